#!/usr/bin/env bash
# Verifies that the restore core (ckcore in libckrun.so) can run after
# the restore host's address space is gone: every direct call and jump stays
# inside the section, nothing goes through the PLT or GOT, nothing touches
# TLS (%fs), no data relocation points into the section, no call or jump
# goes through a register or memory (its target cannot be checked) except
# in the two routines whose purpose it is, and no address of code outside
# the section is taken (it could be called). preload/Makefile runs it on
# every build.
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
# indirect calls and jumps: only ck_ctx_resume (it jumps into the restored
# program, ctx.c) and ck_clone3_thread (it calls the function a new thread
# starts with, which its callers in the core pass as an address inside the
# section, checked below)
while read -r fn addr insn; do
  case "$fn" in
  ck_ctx_resume | ck_clone3_thread) ;;
  *)
    echo "check-restore-code: $fn makes an indirect call or jump at 0x$addr ($insn): its target cannot be checked" >&2
    bad=1
    ;;
  esac
done < <(printf '%s\n' "$dis" | awk '/^[0-9a-f]+ <.*>:$/ { fn = $2; gsub(/[<>:]/, "", fn) }
  /^ *[0-9a-f]+:\t(notrack )?(call|jmp)[a-z]* +\*/ { a = $1; sub(":", "", a); $1 = ""; print fn, a, $0 }')
# addresses taken of code outside the section (objdump names the target)
while read -r code_start code_size; do
  clo=$((16#$code_start)); chi=$((clo + 16#$code_size))
  while read -r addr target; do
    t=$((16#$target))
    if (( t >= clo && t < chi )); then
      echo "check-restore-code: instruction at 0x$addr takes the address 0x$target of code outside the restore core" >&2
      bad=1
    fi
  done < <(printf '%s\n' "$dis" | awk '/\(%rip\),.*# [0-9a-f]+ </ { a = $1; sub(":", "", a); for (i = 1; i <= NF; i++) if ($i == "#") print a, $(i + 1) }')
done < <(objdump -h "$lib" | awk '/^ *[0-9]+ / { name = $2; size = $3; vma = $4; getline; if (/CODE/ && name != "ckcore") print vma, size }')
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
