#!/usr/bin/env bash
# Builds the systemd test image from the host's own Debian packages (no download): busybox-static
# for the shell and tools, the files of the systemd, systemd-sysv and libsystemd packages, and the
# shared libraries they link against. Written as docker-save format, tagged systemd:latest:
#   OUT_DIR/systemd.tar
# The image carries one unit of its own, hello.service, enabled in multi-user.target, which writes
# /run/hello-from-unit once the system has booted.
#
# Usage: testdata/build_systemd.sh OUT_DIR
#
# Idempotent: does nothing when the output is newer than the host's systemd and this script.
# Needs root, umoci, skopeo, busybox-static and systemd installed on the host.
set -euo pipefail

out_dir=${1:?usage: build_systemd.sh OUT_DIR}
systemd=/lib/systemd/systemd
tarball="$out_dir/systemd.tar"
script="${BASH_SOURCE[0]}"

if [[ -f "$tarball" && "$tarball" -nt "$systemd" && "$tarball" -nt "$script" ]]; then
  exit 0
fi
[[ -x "$systemd" ]] || {
  echo "build_systemd.sh: $systemd is missing (apt-get install systemd)" >&2
  exit 1
}

mkdir -p "$out_dir"
work=$(mktemp -d "${TMPDIR:-/tmp}/build-systemd.XXXXXX")
trap 'rm -rf "$work"' EXIT

layout="$work/layout"
bundle="$work/bundle"
umoci init --layout "$layout"
umoci new --image "$layout:latest"
umoci unpack --image "$layout:latest" "$bundle"
rootfs="$bundle/rootfs"

# Debian 12 keeps /bin, /sbin and /lib as real directories (not merged into /usr) on older
# installs and as symlinks on newer ones: follow what the host has, so copied paths line up.
for dir in bin sbin lib lib64; do
  if [[ -L "/$dir" ]]; then
    ln -s "$(readlink "/$dir")" "$rootfs/$dir"
    mkdir -p "$rootfs/$(readlink -f "/$dir")"
  fi
done
mkdir -p "$rootfs/usr/bin" "$rootfs/usr/sbin" "$rootfs/usr/lib"

# busybox first: systemd's files (such as /sbin/init) replace its applets where both exist.
install -D -m 0755 /bin/busybox "$rootfs/bin/busybox"
while read -r applet; do
  [[ "$applet" == "bin/busybox" ]] && continue
  mkdir -p "$rootfs/$(dirname "$applet")"
  ln -sf /bin/busybox "$rootfs/$applet"
done < <(/bin/busybox --list-full)

copy() { # copies a host path (file or symlink) to the same path in the rootfs
  local path=$1
  mkdir -p "$rootfs$(dirname "$path")"
  cp -a --remove-destination "$path" "$rootfs$path"
}

files=$(dpkg -L systemd systemd-sysv libsystemd-shared libsystemd0 |
  grep -v -E '^/usr/share/(doc|man|locale|bash-completion|zsh|lintian|polkit-1|dbus-1)')
elves=()
while read -r path; do
  [[ -z "$path" ]] && continue
  if [[ -L "$path" || -f "$path" ]]; then
    copy "$path"
    if [[ -f "$path" && ! -L "$path" ]] && head -c 4 "$path" | grep -q 'ELF'; then
      elves+=("$path")
    fi
  elif [[ -d "$path" ]]; then
    mkdir -p "$rootfs$path"
  fi
done <<<"$files"

# The libraries every binary links against, and their symlinks' targets.
for lib in $(ldd "${elves[@]}" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// && $2 ~ /^\(/ { print $1 }' |
  sort -u); do
  copy "$lib"
  [[ -L "$lib" ]] && copy "$(readlink -f "$lib")"
done
copy /usr/lib/os-release
ln -sf ../usr/lib/os-release "$rootfs/etc/os-release"

mkdir -p "$rootfs/etc/systemd/system/multi-user.target.wants" "$rootfs/root" "$rootfs/tmp" \
  "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/run" "$rootfs/var/log"
chmod 1777 "$rootfs/tmp"
chmod 0700 "$rootfs/root"
# Empty: systemd makes a transient machine ID at each boot, as in any container image.
: >"$rootfs/etc/machine-id"
cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
cat >"$rootfs/etc/systemd/system/hello.service" <<'EOF'
[Unit]
Description=pouch test unit

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'echo hello from a unit > /run/hello-from-unit'

[Install]
WantedBy=multi-user.target
EOF
ln -s /etc/systemd/system/hello.service \
  "$rootfs/etc/systemd/system/multi-user.target.wants/hello.service"

umoci repack --image "$layout:latest" "$bundle"
umoci config --image "$layout:latest" \
  --config.cmd /sbin/init \
  --config.env "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --author "pouch testdata" \
  --history.comment "systemd and busybox-static from the host's Debian packages"
umoci gc --layout "$layout"

rm -f "$work/systemd.tar"
skopeo --insecure-policy copy --quiet "oci:$layout:latest" \
  "docker-archive:$work/systemd.tar:systemd:latest"
mv -f "$work/systemd.tar" "$tarball"
