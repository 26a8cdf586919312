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
exit 0
