#!/usr/bin/env bash
# Verifies that the restore core (ckcore in libckrun.so) can run after
# the restore host's address space is gone: every direct call and jump stays
# inside the section, nothing goes through the PLT or GOT, nothing touches
# TLS (%fs), and no data relocation points into the section.
set -euo pipefail
lib=${1:-"$(dirname "$0")/../build/Release/libckrun.so"}
[ -f "$lib" ] || { echo "check-restore-code: $lib not found (run npm install first)" >&2; exit 2; }

read -r start size < <(objdump -h "$lib" | awk '$2=="ckcore"{print $4, $3}')
[ -n "${start:-}" ] || { echo "check-restore-code: $lib has no ckcore section" >&2; exit 1; }
lo=$((16#$start)); hi=$((lo + 16#$size))

bad=0
dis=$(objdump -d --no-show-raw-insn -j ckcore "$lib")
# direct calls/jumps: target must be inside the section
while read -r addr target; do
  t=$((16#$target))
  if (( t < lo || t >= hi )); then
    echo "check-restore-code: instruction at 0x$addr jumps outside the restore core (to 0x$target)" >&2
    bad=1
  fi
done < <(printf '%s\n' "$dis" | awk '/^ *[0-9a-f]+:\t(call|jmp|j[a-z]+) +[0-9a-f]+ </{sub(":","",$1); print $1, $3}')
if printf '%s\n' "$dis" | grep -E '@plt|GOTPCREL|%fs:|\*0x[0-9a-f]+\(%rip\)' >&2; then
  echo "check-restore-code: the restore core uses the PLT, the GOT or TLS (lines above)" >&2
  bad=1
fi
# data relocations that would point into the core (function pointer tables)
while read -r off type val; do
  v=$((16#$val))
  if (( v >= lo && v < hi )); then
    echo "check-restore-code: a data relocation at 0x$off points into the restore core" >&2
    bad=1
  fi
done < <(readelf -rW "$lib" | awk '$3=="R_X86_64_RELATIVE"{print $1, $3, $4}')
if (( bad )); then exit 1; fi
n=$(printf '%s\n' "$dis" | grep -c '^ ' || true)
echo "check-restore-code: ckcore ok ($((hi - lo)) bytes, $n instructions, self-contained)"
