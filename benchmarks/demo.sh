#!/usr/bin/env bash
# Wall time of the demo pipeline from a clean results/ (set-up excluded). Last line: demo_seconds=<s>
set -euo pipefail
cd "$(dirname "$0")/.."
make -s setup
rm -rf results .snakemake/incomplete
start=$(date +%s.%N)
.venv/bin/snakemake --cores "${CORES:-2}" --quiet
.venv/bin/snakemake --report results/report.html --quiet
end=$(date +%s.%N)
echo "demo_seconds=$(python3 -c "print(round($end - $start, 1))")"
