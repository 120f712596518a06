#!/usr/bin/env bash
# Builds the busybox test image from Debian's busybox-static, in two archive formats:
#   OUT_DIR/busybox.tar      docker-save format (docker-archive), tagged busybox:latest
#   OUT_DIR/busybox-oci.tar  OCI image layout archive, ref name busybox:latest
#
# Usage: testdata/build_busybox.sh OUT_DIR
#
# Idempotent: does nothing when both outputs are newer than /bin/busybox and this script.
# Needs root (umoci unpack/repack keep ownership), umoci and skopeo.
set -euo pipefail

out_dir=${1:?usage: build_busybox.sh OUT_DIR}
busybox=/bin/busybox
docker_tar="$out_dir/busybox.tar"
oci_tar="$out_dir/busybox-oci.tar"
script="${BASH_SOURCE[0]}"

up_to_date() {
  local f
  for f in "$docker_tar" "$oci_tar"; do
    [[ -f "$f" && "$f" -nt "$busybox" && "$f" -nt "$script" ]] || return 1
  done
}

if up_to_date; then
  exit 0
fi

mkdir -p "$out_dir"
work=$(mktemp -d "${TMPDIR:-/tmp}/build-busybox.XXXXXX")
trap 'rm -rf "$work"' EXIT

layout="$work/layout"
bundle="$work/bundle"
umoci init --layout "$layout"
umoci new --image "$layout:latest"
umoci unpack --image "$layout:latest" "$bundle"
rootfs="$bundle/rootfs"

# The binary and one symlink per applet, at the path busybox itself says the applet lives at.
install -D -m 0755 "$busybox" "$rootfs/bin/busybox"
while read -r applet; do
  [[ "$applet" == "bin/busybox" ]] && continue
  mkdir -p "$rootfs/$(dirname "$applet")"
  ln -sf /bin/busybox "$rootfs/$applet"
done < <("$busybox" --list-full)

mkdir -p "$rootfs/etc" "$rootfs/root" "$rootfs/home/app" "$rootfs/tmp" \
  "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/var"
chmod 1777 "$rootfs/tmp"
chmod 0700 "$rootfs/root"
chown 1000:1000 "$rootfs/home/app"
cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
app:x:1000:
nogroup:x:65534:
EOF

umoci repack --image "$layout:latest" "$bundle"
umoci config --image "$layout:latest" \
  --config.cmd sh \
  --config.env "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --author "pouch testdata" \
  --history.comment "busybox-static from Debian"
umoci gc --layout "$layout"

# Write to temporary names first so an interrupted build never looks up to date.
rm -f "$work/busybox.tar" "$work/busybox-oci.tar"
skopeo --insecure-policy copy --quiet "oci:$layout:latest" \
  "docker-archive:$work/busybox.tar:busybox:latest"
skopeo --insecure-policy copy --quiet "oci:$layout:latest" \
  "oci-archive:$work/busybox-oci.tar:busybox:latest"
mv -f "$work/busybox.tar" "$docker_tar"
mv -f "$work/busybox-oci.tar" "$oci_tar"
