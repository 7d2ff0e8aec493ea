#!/usr/bin/env bash
# Verifies that the shim's files call only downward (docs/design.md,
# "Layers"): an object file may use a hidden symbol (the shim's own
# functions and data, CK_HIDDEN) of its own layer or of a layer below, and
# the uses within one layer form no cycle. The calls the shim wraps for the
# program (close, dup3, ...: default visibility, see exports.map) are libc's
# interface, not a dependency on shim.c, and are not counted.
#
#   check-layers.sh OBJDIR "LAYER: file file ..." "LAYER: ..." ...
#
# Layers are given lowest first (preload/Makefile lists them, and puts
# every file in one).
set -euo pipefail
objdir=${1:?usage: check-layers.sh OBJDIR \"LAYER: file ...\" ...}
shift
declare -A rank layer_of defined_in
n=0
for spec in "$@"; do
  name=${spec%%:*}
  for f in ${spec#*:}; do
    o=${f%.c}
    rank[$o]=$n
    layer_of[$o]=$name
  done
  n=$((n + 1))
done

bad=0
# hidden symbols each object defines
for o in "${!rank[@]}"; do
  [ -f "$objdir/$o.o" ] || { echo "check-layers: $objdir/$o.o is missing" >&2; exit 2; }
  while read -r sym; do
    defined_in[$sym]=$o
  done < <(readelf -sW "$objdir/$o.o" | awk '$5 == "GLOBAL" && $6 == "HIDDEN" && $7 != "UND" { print $8 }')
done

edges=$(mktemp)
trap 'rm -f "$edges"' EXIT
down=0
within=0
for o in "${!rank[@]}"; do
  while read -r sym; do
    p=${defined_in[$sym]:-}
    [ -n "$p" ] && [ "$p" != "$o" ] || continue
    if (( rank[$p] > rank[$o] )); then
      echo "check-layers: $o.c (${layer_of[$o]}) uses $sym of $p.c (${layer_of[$p]}, a layer above it);" \
        "move what both need below them, or let the upper file pass it down" >&2
      bad=1
    elif (( rank[$p] == rank[$o] )); then
      echo "$o $p" >> "$edges"
      within=$((within + 1))
    else
      down=$((down + 1))
    fi
  done < <(nm -u "$objdir/$o.o" | awk '{ print $2 }' | sort -u)
done
if ! sort -u "$edges" | tsort > /dev/null 2> "$edges.err"; then
  echo "check-layers: files of one layer call each other in a cycle:" >&2
  grep -v 'input contains a loop' "$edges.err" | sed 's/^tsort: /  /' >&2
  bad=1
fi
rm -f "$edges.err"
(( bad )) && exit 1
echo "check-layers: ok (${#rank[@]} files in $n layers; $down uses of lower layers, $within within a layer, no cycle)"
