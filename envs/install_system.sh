#!/usr/bin/env bash
# Debian packages of one group, installing only what is missing (nothing to do: silent and instant).
#   pipeline (make setup): what the workflow needs: graphviz (DAG figures), gcc and libc6-dev (CellProfiler's
#            javabridge builds C code), a JDK (CellProfiler's Bio-Formats; any javac on PATH serves).
#   test     (make setup-test): the servers the tests start: nginx, Slurm (with munge), Ceph's radosgw;
#            chromium (headless) for the report's browser test.
# Without root and without sudo, it names the missing packages and stops before installing anything.
# Usage: envs/install_system.sh pipeline|test
set -euo pipefail
group=${1:-pipeline}
case "$group" in
  pipeline) packages=(python3.11-venv graphviz gcc libc6-dev openjdk-17-jdk-headless) ;;
  test) packages=(nginx slurmctld slurmd slurm-client munge radosgw ceph-mon ceph-osd chromium) ;;
  *) echo "usage: $0 pipeline|test" >&2; exit 2 ;;
esac
missing=()
for pkg in "${packages[@]}"; do
  if [ "$pkg" = openjdk-17-jdk-headless ] && command -v javac >/dev/null; then
    continue
  fi
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null; then
    echo "install_system.sh: missing Debian packages ($group): ${missing[*]}; not root and no sudo here:" \
      "have them installed (as root: apt-get install ${missing[*]}), then run make again" >&2
    exit 1
  fi
  SUDO=(sudo)
fi
if ! command -v apt-get >/dev/null; then
  echo "install_system.sh: missing packages ($group): ${missing[*]}; no apt-get here (not Debian):" \
    "install their equivalents, then run make again" >&2
  exit 1
fi
echo "install_system.sh: installing ($group): ${missing[*]}"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
