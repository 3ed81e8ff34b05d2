#!/usr/bin/env bash
# Builds a tiny busybox image without any registry, for the real-client tests.
#   make-busybox-image.sh <outdir> [image-name [cmd...]]
# Writes:
#   <outdir>/rootfs.tar  a root with bin/busybox + one symlink per applet (for `podman import`)
#   <outdir>/oci.tar     the same root as a one-layer OCI image archive (for `ctr images import`,
#                        `podman load`); named <image-name> (default localhost/bb:latest), its
#                        command <cmd...> (default /bin/sh). A CRI sandbox ("pause") image is one
#                        whose command never exits, e.g. `httpd -f -p 80 -h /www`.
# /www holds index.html and cgi-bin/hostname (answers with the container's hostname).
set -euo pipefail
out=${1:?usage: make-busybox-image.sh <outdir> [image-name [cmd...]]}
name=${2:-localhost/bb:latest}
shift $(( $# < 2 ? $# : 2 ))
[ $# -gt 0 ] || set -- /bin/sh
cmd_json=
for a in "$@"; do
  case $a in *[\\\"]*|*[[:cntrl:]]*) echo "make-busybox-image: command word $a needs JSON escaping; not supported" >&2; exit 2;; esac
  cmd_json+="${cmd_json:+,}\"$a\""
done
bb=${BUSYBOX:-/bin/busybox}
[ -x "$bb" ] || { echo "make-busybox-image: $bb is missing (apt-get install busybox-static)" >&2; exit 1; }

work=$(mktemp -d "$out/.bbimg-XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,proc,sys,dev,root,www}
cp "$bb" "$root/bin/busybox"
for applet in $("$bb" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
echo 'root:x:0:' > "$root/etc/group"
echo 'hello from busybox' > "$root/www/index.html"
mkdir -p "$root/www/cgi-bin"
printf '#!/bin/sh\necho "Content-Type: text/plain"\necho\nhostname\n' > "$root/www/cgi-bin/hostname"
chmod 0755 "$root/www/cgi-bin/hostname"
# Fixed owner and mtime: the same input gives the same layer digest.
tar --numeric-owner --owner=0 --group=0 --mtime='2020-01-01 00:00:00Z' --sort=name \
    -C "$root" -cf "$out/rootfs.tar" .

# OCI image layout: oci-layout, index.json, blobs/sha256/{layer,config,manifest}.
oci=$work/oci
mkdir -p "$oci/blobs/sha256"
layer_sha=$(sha256sum "$out/rootfs.tar" | cut -d' ' -f1)
layer_size=$(stat -c %s "$out/rootfs.tar")
cp "$out/rootfs.tar" "$oci/blobs/sha256/$layer_sha"
blob() { # stdin -> blob; prints "<sha> <size>" once the blob is in place
  local tmp sha size
  tmp=$(mktemp "$oci/blob.XXXXXX")
  cat > "$tmp"; sha=$(sha256sum "$tmp" | cut -d' ' -f1); size=$(stat -c %s "$tmp")
  mv "$tmp" "$oci/blobs/sha256/$sha"; echo "$sha $size"
}
IFS=' ' read -r config_sha config_size <<<"$(printf '%s' \
  '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":['"$cmd_json"']},'\
'"rootfs":{"type":"layers","diff_ids":["sha256:'"$layer_sha"'"]},"history":[{"created_by":"make-busybox-image.sh"}]}' | blob)"
IFS=' ' read -r manifest_sha manifest_size <<<"$(printf '%s' \
  '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'\
'"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'"$config_sha"'","size":'"$config_size"'},'\
'"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:'"$layer_sha"'","size":'"$layer_size"'}]}' | blob)"
printf '%s' '{"imageLayoutVersion":"1.0.0"}' > "$oci/oci-layout"
printf '%s' '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json",'\
'"digest":"sha256:'"$manifest_sha"'","size":'"$manifest_size"','\
'"annotations":{"io.containerd.image.name":"'"$name"'","org.opencontainers.image.ref.name":"'"${name##*:}"'"},'\
'"platform":{"architecture":"amd64","os":"linux"}}]}' > "$oci/index.json"
tar --numeric-owner --owner=0 --group=0 -C "$oci" -cf "$out/oci.tar" oci-layout index.json blobs
echo "$out/rootfs.tar $out/oci.tar"
