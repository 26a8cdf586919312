#!/usr/bin/env bash
# Stop the daemons start_ceph_rgw.sh started (by their pid files under $1; "rgw" as $2: the gateway only).
set -uo pipefail
state=${1:?usage: stop_ceph_rgw.sh STATE_DIR [rgw]}
names=(client.rgw.a osd.0 mon.a)
[ "${2:-}" = rgw ] && names=(client.rgw.a)
for name in "${names[@]}"; do
  pidfile=$state/run/$name.pid
  [ -s "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null
  rm -f "$pidfile"
done
exit 0
