#!/usr/bin/env bash
# Run by snakemake --sdm conda after creating this env: the project itself (the rules' scripts import cellvae).
set -euo pipefail
bash envs/install_project.sh
