#!/usr/bin/env bash
# Installs pouch from this checkout: /usr/local/bin/pouch (a launcher of main.ts; the single-file
# build replaces it later) and the systemd unit, which it enables when systemd runs.
set -euo pipefail
checkout="$(cd "$(dirname "$0")/.." && pwd)"
deno="$(command -v deno)"

cat >/usr/local/bin/pouch <<LAUNCHER
#!/bin/sh
exec "$deno" run -A "$checkout/main.ts" "\$@"
LAUNCHER
chmod 0755 /usr/local/bin/pouch
install -D -m 0644 "$checkout/contrib/pouch.service" /etc/systemd/system/pouch.service
echo "installed /usr/local/bin/pouch and /etc/systemd/system/pouch.service"

if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable --now pouch
  systemctl --no-pager status pouch | head -n 5
else
  echo "systemd is not running here: start the daemon with 'pouch daemon'"
fi
