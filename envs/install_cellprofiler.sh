#!/usr/bin/env bash
# Headless CellProfiler 4.2.8.1 in its own venv on Python 3.11 (its pins clash with the main stack).
# Usage: envs/install_cellprofiler.sh [VENV]   (default .venv-cellprofiler)
set -euo pipefail
VENV=${1:-.venv-cellprofiler}
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3.11}
export JAVA_HOME=${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")}
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q -U pip==25.3 wheel==0.45.1 "setuptools==80.9.0"   # CellProfiler imports pkg_resources
"$VENV/bin/pip" install -q numpy==1.23.5 cython==3.1.4   # javabridge builds against numpy<2 headers
"$VENV/bin/pip" install -q --no-build-isolation -r "$HERE/cellprofiler-requirements.txt"
"$VENV/bin/pip" install -q --no-deps cellprofiler-core==4.2.8.1 cellprofiler==4.2.8.1
"$VENV/bin/cellprofiler" --version
