#!/usr/bin/env bash
# Start a single-node Slurm (munged + slurmctld + slurmd) on 127.0.0.1 for the tests; state under $1.
# Needs root (slurmd) and the Debian packages slurmctld slurmd slurm-client munge (make setup).
# The config must also sit at /etc/slurm/slurm.conf: the job step drops SLURM_CONF before srun;
# an existing one is kept as slurm.conf.cellvae-backup and restored by stop_slurm.sh.
set -euo pipefail
state=${1:?usage: start_slurm.sh STATE_DIR}
here=$(cd "$(dirname "$0")" && pwd)
host=$(hostname -s)
var=$state/var
mkdir -p "$var/state" "$var/spool" /etc/slurm
sed -e "s#@HOST@#$host#g" -e "s#@VAR@#$var#g" -e "s#@CTLD_PORT@#${CTLD_PORT:-6817}#" \
    -e "s#@SLURMD_PORT@#${SLURMD_PORT:-6818}#" "$here/slurm.conf.in" > "$state/slurm.conf"
sed -e "s#@HOST@#$host#g" "$here/gres.conf.in" > "$state/gres.conf"
for name in slurm.conf gres.conf; do
  target=/etc/slurm/$name
  if [ -e "$target" ] && [ ! -L "$target" ] && [ ! -e "$target.cellvae-backup" ]; then
    mv "$target" "$target.cellvae-backup"
  fi
  ln -sf "$state/$name" "$target"
done
export SLURM_CONF=$state/slurm.conf
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  mkdir -p /run/munge /var/log/munge /var/lib/munge && chown munge:munge /run/munge /var/log/munge /var/lib/munge
  [ -s /etc/munge/munge.key ] || { mungekey -c && chown munge:munge /etc/munge/munge.key; }
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 1 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
  cp /run/munge/munged.pid "$var/munged.pid"   # ours to stop
  munge -n | unmunge >/dev/null
fi
/usr/sbin/slurmctld
/usr/sbin/slurmd
for _ in $(seq 1 120); do
  sinfo -h -o "%T" 2>/dev/null | grep -q -E "^idle" && break
  sleep 0.5
done
sinfo -h -o "%T" | grep -q -E "^idle" || { echo "slurm: node not idle after 60 s; see $var/slurm*.log" >&2; exit 1; }
echo "slurm up (SLURM_CONF=$SLURM_CONF)"
