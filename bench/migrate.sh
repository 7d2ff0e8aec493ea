#!/bin/sh
# The migration figure of issue 14: a 1 GiB program that writes 1% of its
# pages per 100 ms (examples/dirty) is moved with ckrun migrate to a
# `ckrun restart -` on this machine (which restores it in a PID namespace of
# its own: the source still holds its PIDs until it is ended). Prints
# ckrun migrate's rounds and how long the program stood still, and the gap
# the program itself saw between two consecutive steps across the move.
#   bench/migrate.sh [MIB] [RUNS]     (default 1024 MiB, 3 runs; as root)
# BENCH_DIR=/dev/shm puts both checkpoint directories on tmpfs (default /tmp).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
mib=${1:-1024}
runs=${2:-3}
work=$(mktemp -d "${BENCH_DIR:-/tmp}/ckrun-migrate-bench-XXXXXX")
trap 'rm -rf "$work"' EXIT
for i in $(seq "$runs"); do
	rm -rf "$work/src" "$work/dst"
	node "$here/bin/ckrun.js" --dir "$work/src" -- "$here/examples/bin/dirty" --mib "$mib" --steps 100000 --permille 10 --pace 100 --hash-every 0 \
		> "$work/out.src" 2> "$work/err.src" &
	src=$!
	# filled and stepping
	until grep -q '^step 20$' "$work/out.src" 2>/dev/null; do sleep 0.2; done
	node "$here/bin/ckrun.js" migrate --dir "$work/src" --to "exec node '$here/bin/ckrun.js' restart - --dir '$work/dst'" \
		> "$work/out.dst" 2> "$work/err.dst" &
	mig=$!
	until grep -q 'stood still' "$work/err.dst" 2>/dev/null; do sleep 0.2; done
	sleep 1
	wait "$src" || true
	echo "run $i:"
	grep -v '^ckrun restart: running' "$work/err.dst" | sed 's/^/  /'
	pkill -9 -P "$mig" 2>/dev/null || true
	kill -9 "$mig" 2>/dev/null || true
	# the restored program (in the target's PID namespace) ends with the target's ckrun
	sleep 1
done
