#!/usr/bin/env python3
"""pool.py: multiprocessing.Pool(2) mapping work over two worker processes.

The parent feeds 200 tasks to a pool of two forked workers (pipes between
them, locks that are POSIX semaphores in /dev/shm, the pool's threads in
the parent) and prints each result in order as it comes back. Two runs
print exactly the same lines.
"""
import hashlib
import multiprocessing as mp
import os
import sys
import time

TASKS = 200
PACE = 0.015


def work(x):
    time.sleep(0.01)
    s = x
    for k in range(3000):
        s = (s * 31 + x * k) % 1000003
    return x, s, os.getppid() == PARENT


PARENT = os.getpid()


def main():
    print(f"pool.py: start tasks={TASKS} workers=2", flush=True)
    digest = hashlib.sha256()
    bad = 0
    ctx = mp.get_context("fork")
    pool = ctx.Pool(2)
    for i, (x, s, parent_ok) in enumerate(pool.imap(work, range(1, TASKS + 1), chunksize=1), 1):
        if x != i:
            print(f"error: result {i} is for task {x}", flush=True)
        if not parent_ok:
            bad += 1
        digest.update(f"{x}:{s};".encode())
        print(f"step {i} task={x} result={s}", flush=True)
        time.sleep(PACE)
    pool.close()
    pool.join()
    if bad:
        print(f"error: {bad} results came from a worker whose parent is not the pool's", flush=True)
    print(f"pool.py: done tasks={TASKS} digest={digest.hexdigest()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
