#!/usr/bin/env python3
# A program whose directory tree is its state (test/snapdir.test.ts):
# usage: snapdir_tree.py TREE STEPS DELAY
#
# Step i reads the counter file TREE/count (i-1) and writes i, creates
# TREE/f<i> (O_EXCL: it must not be there yet) with mode and mtime set,
# removes TREE/f<i-3> after checking its content, mode and mtime, makes a
# directory d<i> with a link to f<i> every 5 steps and removes d<i-30> after
# checking its link (every step checks every link), and rewrites in place TREE/open.dat, a file it keeps
# open. Every file but open.dat is closed between steps. A tree that is not
# as the program left it at some step (a restart that put back files made,
# changed or removed after a checkpoint only partly) says MISMATCH. At the
# end it prints a digest of the whole tree, a function of STEPS alone.
import hashlib, os, sys, time

tree, steps, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])


def p(name):
    return os.path.join(tree, name)


def mismatch(what):
    print(f"MISMATCH {what}", flush=True)
    sys.exit(1)


def content(i):
    return (f"file {i}\n" * (i % 7 + 1)).encode()


def mode(i):
    return 0o640 if i % 3 else 0o600


opened = os.open(p("open.dat"), os.O_RDWR | os.O_CREAT, 0o644)
for i in range(1, steps + 1):
    try:
        with open(p("count"), "rb") as f:
            was = int(f.read() or b"0")
    except FileNotFoundError:
        was = 0
    if was != i - 1:
        mismatch(f"count says {was} at step {i}")
    with open(p("count"), "wb") as f:
        f.write(str(i).encode())
    if os.pread(opened, 8, 0) != (b"%08d" % (i - 1) if i > 1 else b""):
        mismatch(f"open.dat says {os.pread(opened, 8, 0)!r} at step {i}")
    os.pwrite(opened, b"%08d" % i, 0)
    try:
        fd = os.open(p(f"f{i}"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mismatch(f"f{i} exists before step {i} made it")
    os.write(fd, content(i))
    os.close(fd)
    os.chmod(p(f"f{i}"), mode(i))
    os.utime(p(f"f{i}"), ns=(i * 10**9 + 1, i * 10**9 + 123))
    old = i - 3
    if old >= 1:
        st = os.lstat(p(f"f{old}"))
        with open(p(f"f{old}"), "rb") as f:
            if f.read() != content(old):
                mismatch(f"f{old} has other content at step {i}")
        if st.st_mode & 0o7777 != mode(old) or st.st_mtime_ns != old * 10**9 + 123:
            mismatch(f"f{old} has mode {st.st_mode & 0o7777:o} mtime {st.st_mtime_ns} at step {i}")
        os.unlink(p(f"f{old}"))
    for name in os.listdir(tree):
        if name.startswith("d") and os.readlink(p(f"{name}/l")) != f"../f{name[1:]}":
            mismatch(f"{name}/l points to {os.readlink(p(f'{name}/l'))} at step {i}")
    if i % 5 == 0:
        os.mkdir(p(f"d{i}"))
        os.symlink(f"../f{i}", p(f"d{i}/l"))
    if i > 30 and (i - 30) % 5 == 0:
        d = p(f"d{i - 30}")
        if os.readlink(os.path.join(d, "l")) != f"../f{i - 30}":
            mismatch(f"d{i - 30}/l at step {i}")
        os.unlink(os.path.join(d, "l"))
        os.rmdir(d)
    print(f"step {i}", flush=True)
    time.sleep(delay)
os.close(opened)

digest = hashlib.sha256()
for root, dirs, files in os.walk(tree):
    dirs.sort()
    for name in sorted(dirs + files):
        full = os.path.join(root, name)
        st = os.lstat(full)
        rel = os.path.relpath(full, tree)
        digest.update(f"{rel} {st.st_mode:o} {st.st_size}\n".encode())
        if os.path.islink(full):
            digest.update(os.readlink(full).encode())
        elif os.path.isfile(full):
            with open(full, "rb") as f:
                digest.update(f.read())
            if name.startswith("f"):
                digest.update(str(st.st_mtime_ns).encode())
print(f"tree {digest.hexdigest()}", flush=True)
