#!/usr/bin/env python3
"""loop.py: a Python loop whose state lives in a dict and a list.

Every step draws from a seeded random generator (its state is part of the
interpreter's memory too), updates a dict of counters and a list of recent
events, and prints a digest of the whole state. The last line prints the
sha256 of repr(state). Two runs print exactly the same lines.
"""
import hashlib
import random
import sys
import time

STEPS = 200
PACE = 0.012


def digest(state, history, big):
    text = repr((sorted(state.items()), history, sum(big[::997])))
    return hashlib.sha256(text.encode()).hexdigest()


def main():
    print(f"loop.py: start steps={STEPS}", flush=True)
    rng = random.Random(12345)
    state = {"total": 0, "words": 0}
    history = []
    big = [i * i for i in range(200_000)]
    for step in range(1, STEPS + 1):
        key = f"k{rng.randrange(40)}"
        state[key] = state.get(key, 0) + step
        state["total"] += rng.randrange(1000)
        state["words"] += len(key)
        history.append((step, key, state["total"]))
        if len(history) > 50:
            history.pop(0)
        big[(step * 7919) % len(big)] += step
        d = digest(state, history, big)
        print(f"step {step} total={state['total']} keys={len(state)} digest={d[:16]}", flush=True)
        time.sleep(PACE)
    d = digest(state, history, big)
    print(f"loop.py: done steps={STEPS} total={state['total']} keys={len(state)} digest={d}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
