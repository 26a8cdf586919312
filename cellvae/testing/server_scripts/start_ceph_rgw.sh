#!/usr/bin/env bash
# Start a throwaway single-node Ceph (1 mon, 1 memstore OSD) and radosgw (the S3 API) on 127.0.0.1 for the
# tests; all state under $1, pids in $1/run/*.pid. Prints nothing secret: the S3 user's keys are taken from
# the environment (S3_ACCESS_KEY, S3_SECRET_KEY). Debian packages: radosgw ceph-mon ceph-osd (make setup).
# Usage: start_ceph_rgw.sh STATE_DIR [PORT]      (restart only the gateway: start_ceph_rgw.sh STATE_DIR PORT rgw)
set -euo pipefail
state=${1:?usage: start_ceph_rgw.sh STATE_DIR [PORT] [rgw]}
port=${2:-7480}
conf=$state/ceph.conf
wait_for_gateway() {
  for _ in $(seq 1 150); do curl -s -o /dev/null "http://127.0.0.1:$port/" && return 0; sleep 0.2; done
  echo "radosgw: no answer on 127.0.0.1:$port after 30 s; see $state/log" >&2; return 1
}
if [ "${3:-}" = rgw ]; then
  radosgw -c "$conf" -n client.rgw.a
  wait_for_gateway
  exit 0
fi
: "${S3_ACCESS_KEY:?set S3_ACCESS_KEY}" "${S3_SECRET_KEY:?set S3_SECRET_KEY}"
rm -rf "$state"; mkdir -p "$state/mon" "$state/osd0" "$state/run" "$state/log" "$state/rgw"
fsid=$(uuidgen)
cat > "$conf" <<EOC
[global]
fsid = $fsid
mon host = v1:127.0.0.1:${MON_PORT:-6789}
mon initial members = a
public network = 127.0.0.0/8
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 2000
run dir = $state/run
pid file = $state/run/\$name.pid
log file = $state/log/\$name.log
admin socket = $state/run/\$name.asok
keyring = $state/keyring
[mon]
mon data = $state/mon
[osd]
osd objectstore = memstore
memstore device bytes = 2147483648
osd data = $state/osd\$id
osd max object name len = 256
osd max object namespace len = 64
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$port
rgw data = $state/rgw
EOC
ceph-authtool --create-keyring "$state/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$state/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
monmaptool --create --add a "v1:127.0.0.1:${MON_PORT:-6789}" --fsid "$fsid" "$state/monmap" >/dev/null
ceph-mon -c "$conf" --mkfs -i a --monmap "$state/monmap" --keyring "$state/keyring"
ceph-mon -c "$conf" -i a
# the monitor answers `ceph -s` before it accepts commands (EPERM meanwhile): retry
osd=""
for _ in $(seq 1 100); do osd=$(ceph -c "$conf" osd create 2>/dev/null) && break; sleep 0.3; done
[ -n "$osd" ] || { echo "ceph: the monitor refused 'osd create' for 30 s; see $state/log" >&2; exit 1; }
ceph-osd -c "$conf" -i "$osd" --mkfs >/dev/null 2>&1
# the OSD's first command can reach the monitor before the monitor's map reached the OSD ("wrong fsid": the OSD
# sent fsid 0; seen in whole test-suite runs, both tries of a fresh start alike): start it again, up to 5 times
for try in 1 2 3 4 5; do
  ceph-osd -c "$conf" -i "$osd" 2>"$state/log/osd-start.err" && break
  [ "$try" -lt 5 ] || { cat "$state/log/osd-start.err" >&2; exit 1; }
  sleep 2
done
for _ in $(seq 1 100); do ceph -c "$conf" osd stat 2>/dev/null | grep -q "1 up" && break; sleep 0.3; done
ceph -c "$conf" osd stat | grep -q "1 up" || { echo "ceph: the OSD did not come up; see $state/log" >&2; exit 1; }
radosgw -c "$conf" -n client.rgw.a
wait_for_gateway
radosgw-admin -c "$conf" user create --uid=cellvae --display-name=cellvae \
  --access-key="$S3_ACCESS_KEY" --secret="$S3_SECRET_KEY" >/dev/null
echo "radosgw up on http://127.0.0.1:$port"
