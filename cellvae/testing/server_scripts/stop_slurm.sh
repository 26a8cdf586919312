#!/usr/bin/env bash
# Stop what start_slurm.sh started (by pid files under $1) and restore /etc/slurm.
set -uo pipefail
state=${1:?usage: stop_slurm.sh STATE_DIR}
var=$state/var
export SLURM_CONF=$state/slurm.conf
scancel --full --signal=KILL --user="$(id -un)" 2>/dev/null
source "$(dirname "$0")/stop_pidfile.sh"
for daemon in slurmd slurmctld munged; do
  stop_pidfile "$var/$daemon.pid"
done
for name in slurm.conf gres.conf; do
  target=/etc/slurm/$name
  [ -L "$target" ] && [ "$(readlink "$target")" = "$state/$name" ] && rm -f "$target"
  [ -e "$target.cellvae-backup" ] && mv "$target.cellvae-backup" "$target"
done
exit 0
