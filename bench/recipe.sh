#!/usr/bin/env bash
# The well-known shell recipe, as operators run it: hard-link each tag's manifest and blobs into a skopeo `dir:`
# layout named <name>:<tag> under its project, then `skopeo sync --src dir` once per project. Kept faithful,
# losses included: the name keeps only its first and last components, index children are linked as plain
# blobs, and a failing image stops the rest of its project.
# usage: recipe.sh link REGISTRY_ROOT OUT_DIR | recipe.sh sync OUT_DIR DEST_HOST
set -u
mode=$1
if [ "$mode" = link ]; then
  v2=$2/docker/registry/v2
  out=$3
  cd "$v2/repositories" || exit 1
  find . -path '*/_manifests/tags/*/current/link' | while read -r link; do
    repo=${link#./}; repo=${repo%%/_manifests/*}
    tag=${link%/current/link}; tag=${tag##*/}
    project=${repo%%/*}; name=${repo##*/}
    digest=$(cat "$link"); hex=${digest#sha256:}
    dir=$out/$project/$name:$tag
    mkdir -p "$dir"
    echo 'Directory Transport Version: 1.1' > "$dir/version"
    ln -f "$v2/blobs/sha256/${hex:0:2}/$hex/data" "$dir/manifest.json"
    for d in $(grep -o 'sha256:[a-f0-9]\{64\}' "$dir/manifest.json" | sort -u); do
      h=${d#sha256:}
      ln -f "$v2/blobs/sha256/${h:0:2}/$h/data" "$dir/$h" 2>/dev/null
    done
  done
elif [ "$mode" = sync ]; then
  out=$2
  dest=$3
  for project in "$out"/*; do
    skopeo sync --src dir --dest docker --dest-tls-verify=false "$project" "$dest/$(basename "$project")" >/dev/null 2>&1 || true
  done
fi
