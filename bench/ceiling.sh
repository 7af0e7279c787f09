#!/usr/bin/env bash
# The destination's ingest ceiling: every blob file of the storage uploaded exactly once with curl (POST for a
# session, then one streamed PUT of the whole file, `curl -T`), 8 at a time. Nothing is checked or resolved.
# usage: ceiling.sh REGISTRY_ROOT DEST_HOST [PARALLEL]
set -eu
root=$1/docker/registry/v2/blobs/sha256
dest=$2
parallel=${3:-8}
upload() {
  file=$1; dest=$2
  hex=$(basename "$(dirname "$file")")
  loc=$(curl -sS -D - -o /dev/null -X POST "http://$dest/v2/ceiling/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
  case $loc in http*) ;; *) loc="http://$dest$loc" ;; esac
  curl -sS -f -o /dev/null -H "Expect:" -H "Content-Type: application/octet-stream" -T "$file" "$loc&digest=sha256:$hex"
}
export -f upload
find "$root" -name data -type f | xargs -P "$parallel" -I{} bash -c 'upload "$@"' _ {} "$dest"
