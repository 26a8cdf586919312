#!/usr/bin/env bash
# The project (package cellvae) into the active conda env, editable: the post-deploy step of every env of
# envs/*.yaml, which Snakemake runs (snakemake --sdm conda) in its working directory, the repository root.
set -euo pipefail
if ! grep -qs '^name = "cellvae"$' pyproject.toml; then
  echo "install_project.sh: $(pwd) is not the cellvae repository root; run snakemake from there" >&2
  exit 1
fi
"$CONDA_PREFIX/bin/python" -m pip install -q --no-deps --no-build-isolation -e .
