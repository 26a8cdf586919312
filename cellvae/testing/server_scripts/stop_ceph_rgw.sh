#!/usr/bin/env bash
# Stop the daemons start_ceph_rgw.sh started (by their pid files under $1; "rgw" as $2: the gateway only).
set -uo pipefail
state=${1:?usage: stop_ceph_rgw.sh STATE_DIR [rgw]}
names=(client.rgw.a osd.0 mon.a)
[ "${2:-}" = rgw ] && names=(client.rgw.a)
source "$(dirname "$0")/stop_pidfile.sh"
for name in "${names[@]}"; do
  stop_pidfile "$state/run/$name.pid"
done
# a full stop also ends a daemon of this state that had not written its pid file yet (a start that failed under
# load): left running, its monitor would hold the port, and the next start's OSD would meet a foreign fsid
if [ "${2:-}" != rgw ]; then
  pkill -KILL -f -- "-c $state/ceph.conf" 2>/dev/null
  for _ in $(seq 1 50); do pgrep -f -- "-c $state/ceph.conf" >/dev/null || break; sleep 0.1; done
fi
exit 0
