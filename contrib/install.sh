#!/usr/bin/env bash
# Installs pouch from this checkout: dist/pouch (the single-file build, made with `deno task build`
# when it is missing) as /usr/local/bin/pouch, and the systemd unit, which it enables when systemd
# runs. The host then needs Deno, containerd and runc; nothing is read from the checkout afterwards.
set -euo pipefail
checkout="$(cd "$(dirname "$0")/.." && pwd)"

if [ ! -x "$checkout/dist/pouch" ]; then
  (cd "$checkout" && deno task build)
fi
install -D -m 0755 "$checkout/dist/pouch" /usr/local/bin/pouch
install -D -m 0644 "$checkout/contrib/pouch.service" /etc/systemd/system/pouch.service
echo "installed /usr/local/bin/pouch and /etc/systemd/system/pouch.service"

# The API socket is mode 0660, group pouch: members of the group use pouch without root.
groupadd -f -r pouch

# dist/pouch starts with `#!/usr/bin/env -S deno run ...`: under systemd, deno must be on the
# unit's PATH, which holds only the system directories.
case "$(command -v deno || true)" in
  /usr/local/sbin/* | /usr/local/bin/* | /usr/sbin/* | /usr/bin/* | /sbin/* | /bin/*) ;;
  *) echo "warning: deno is not in /usr/local/bin or /usr/bin: systemd will not find it" >&2 ;;
esac

if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable --now pouch
  systemctl --no-pager status pouch | head -n 5
else
  echo "systemd is not running here: start the daemon with 'pouch daemon'"
fi
