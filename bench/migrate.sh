#!/bin/sh
# The migration figure of issue 14: a 1 GiB program that writes 1% of its
# pages per 100 ms (examples/dirty) is moved with ckrun migrate to a
# `ckrun restart -` on this machine (which restores it in a PID namespace of
# its own: the source still holds its PIDs until it is ended). Prints
# ckrun migrate's rounds and (an upper bound of) how long the program stood
# still, and the last step it printed on the source and the first on the
# target (they must be consecutive).
#   bench/migrate.sh [MIB] [RUNS]     (default 1024 MiB, 3 runs; as root)
# PERMILLE=N PACE=MS: the program writes N per mille of its pages every MS ms (default 10, 100).
# BENCH_DIR=/dev/shm puts both checkpoint directories on tmpfs (default /tmp);
# TARGET_ENV=CKRUN_TRACE=1 BENCH_LOG=FILE keeps the target's phases (trace marks) in FILE.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
mib=${1:-1024}
runs=${2:-3}
work=$(mktemp -d "${BENCH_DIR:-/tmp}/ckrun-migrate-bench-XXXXXX")
trap 'rm -rf "$work"' EXIT
for i in $(seq "$runs"); do
	rm -rf "$work/src" "$work/dst"
	# stdout a pipe, not a file: a restart would restore a file at its checkpoint offset
	node "$here/bin/ckrun.js" --dir "$work/src" -- "$here/examples/bin/dirty" --mib "$mib" --steps 100000 --permille "${PERMILLE:-10}" --pace "${PACE:-100}" --hash-every 0 \
		2> "$work/err.src.$i" | cat > "$work/out.src.$i" &
	# filled and stepping
	until grep -q '^step 20$' "$work/out.src.$i" 2>/dev/null; do sleep 0.2; done
	node "$here/bin/ckrun.js" migrate --dir "$work/src" --to "exec env ${TARGET_ENV:-} node '$here/bin/ckrun.js' restart - --dir '$work/dst'" \
		> "$work/out.dst.$i" 2> "$work/err.dst.$i" &
	mig=$!
	until grep -q 'stood still\|the program runs on here' "$work/err.dst.$i" 2>/dev/null; do sleep 0.2; done
	sleep 1
	cp "$work/err.dst.$i" "${BENCH_LOG:-/dev/null}" 2>/dev/null || true
	[ -z "${BENCH_LOG:-}" ] || cp "$work/err.src.$i" "$BENCH_LOG.src"
	echo "run $i:"
	grep -v '^ckrun restart: running' "$work/err.dst.$i" | grep -v '^ckrun\['  | sed 's/^/  /'
	echo "  steps: last on the source $(tail -1 "$work/out.src.$i"), first on the target $(head -1 "$work/out.dst.$i")"
	# the target's ckrun (the restored program ends with it), then migrate itself
	for t in $(pgrep -P "$mig"); do kill -9 "$t"; done
	kill -9 "$mig" 2>/dev/null || true
	wait || true
	sleep 1
done
