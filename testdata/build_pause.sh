#!/usr/bin/env bash
# Builds the pod sandbox ("pause") test image from Debian's static catatonit: an image holding
# only /catatonit, whose command `catatonit -P` sleeps as pid 1 of the pod, reaps zombies and
# exits on SIGTERM/SIGINT, like Kubernetes' pause image.
#   OUT_DIR/pause.tar  docker-save format (docker-archive), tagged pause:latest
#
# Usage: testdata/build_pause.sh OUT_DIR
#
# Idempotent: does nothing when the output is newer than the catatonit binary and this script.
# Needs root (umoci unpack/repack keep ownership), umoci, skopeo and catatonit.
set -euo pipefail

out_dir=${1:?usage: build_pause.sh OUT_DIR}
catatonit=/usr/bin/catatonit
docker_tar="$out_dir/pause.tar"
script="${BASH_SOURCE[0]}"

if [[ -f "$docker_tar" && "$docker_tar" -nt "$catatonit" && "$docker_tar" -nt "$script" ]]; then
  exit 0
fi

mkdir -p "$out_dir"
work=$(mktemp -d "${TMPDIR:-/tmp}/build-pause.XXXXXX")
trap 'rm -rf "$work"' EXIT

layout="$work/layout"
bundle="$work/bundle"
umoci init --layout "$layout"
umoci new --image "$layout:latest"
umoci unpack --image "$layout:latest" "$bundle"
rootfs="$bundle/rootfs"
install -D -m 0755 "$catatonit" "$rootfs/catatonit"
mkdir -p "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/etc"

umoci repack --image "$layout:latest" "$bundle"
umoci config --image "$layout:latest" \
  --config.entrypoint /catatonit --config.cmd -P \
  --config.user 65535:65535 \
  --author "pouch testdata" \
  --history.comment "catatonit from Debian"
umoci gc --layout "$layout"

rm -f "$work/pause.tar"
skopeo --insecure-policy copy --quiet "oci:$layout:latest" \
  "docker-archive:$work/pause.tar:pause:latest"
mv -f "$work/pause.tar" "$docker_tar"
