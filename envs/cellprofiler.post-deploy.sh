#!/usr/bin/env bash
# Run by snakemake --sdm conda after creating envs/cellprofiler.yaml: the project, then headless CellProfiler
# 4.2.8.1 in a venv of its own inside the env (the recipe of make setup; its pins clash with the project's),
# linked as the env's bin/cellprofiler (config: cellprofiler.executable: cellprofiler).
set -euo pipefail
bash envs/install_project.sh
PYTHON="$CONDA_PREFIX/bin/python3.11" bash envs/install_cellprofiler.sh "$CONDA_PREFIX/cellprofiler"
ln -sf "$CONDA_PREFIX/cellprofiler/bin/cellprofiler" "$CONDA_PREFIX/bin/cellprofiler"
