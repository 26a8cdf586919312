#!/usr/bin/env bash
# Make the cluster profiles usable by name (snakemake --profile aws-gpu, --profile slurm-gpu): link each folder
# of profiles/ into the user's Snakemake profile folder, where Snakemake looks names up. profiles/ stays the one
# copy; profiles/default is the workflow profile, which Snakemake finds by itself. An existing entry is never
# replaced (a differing one is reported); nothing is printed when every link is already in place.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
target=${XDG_CONFIG_HOME:-$HOME/.config}/snakemake
for profile in "$repo"/profiles/*/; do
  profile=${profile%/}
  name=$(basename "$profile")
  [ "$name" = default ] && continue
  link=$target/$name
  if [ -e "$link" ] && [ "$(readlink -f "$link")" = "$(readlink -f "$profile")" ]; then
    continue
  elif [ -e "$link" ] || [ -L "$link" ]; then
    if [ -d "$link" ] && diff -rq "$link" "$profile" >/dev/null 2>&1; then
      continue  # a copy with the same content serves as well
    fi
    echo "profile $name: $link exists and differs from $profile; left as it is" \
      "(snakemake --profile $name uses it; --profile $profile uses the project's)"
  else
    mkdir -p "$target"
    ln -s "$profile" "$link"
    echo "profile $name: linked $link -> $profile (snakemake --profile $name)"
  fi
done
