#!/usr/bin/env bash
# The README's first command: build dist/pouch, start its daemon (with its own containerd) if
# none is running, load a busybox image built here from Debian's busybox-static, and run a
# container.
set -euo pipefail
cd "$(dirname "$0")/.."
deno task build >/dev/null
pouch=("$PWD/dist/pouch")
socket=/var/run/pouchd.sock

bash testdata/build_busybox.sh testdata/out

if ! "${pouch[@]}" version >/dev/null 2>&1; then
  echo "demo: starting pouch daemon (log: /var/log/pouchd.log)"
  nohup "${pouch[@]}" daemon >>/var/log/pouchd.log 2>&1 &
  for _ in $(seq 1 100); do
    [ -S "$socket" ] && "${pouch[@]}" version >/dev/null 2>&1 && break
    sleep 0.2
  done
fi

"${pouch[@]}" load -i testdata/out/busybox.tar
"${pouch[@]}" run --rm busybox echo "hello from pouch"
"${pouch[@]}" ps -a
echo "demo: the daemon keeps running; try: dist/pouch run -d --name web busybox sleep 1000"
