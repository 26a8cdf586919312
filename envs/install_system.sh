#!/usr/bin/env bash
# Debian packages the workflow and its tests need; installs only what is missing.
set -euo pipefail
packages=(graphviz gcc libc6-dev openjdk-17-jdk-headless nginx slurmctld slurmd slurm-client munge radosgw ceph-mon ceph-osd)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# A JDK already on PATH (javac) serves CellProfiler as well as Debian's.
if command -v javac >/dev/null; then
  missing=("${missing[@]/openjdk-17-jdk-headless}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
