#!/usr/bin/env python3
# A file with holes, changed in place after each checkpoint, and a scratch
# file deleted after the first one (files rolled back by content, issue 12).
# Before each change the program checks, through its own descriptors and
# the paths, that everything is as it left it: after a restart that is the
# state at the checkpoint. The test creates DIR/go-N once checkpoint N is
# taken; the program then checks, changes the files and prints
# "changed N"; it ends after ROUNDS rounds with "done".
#   filestate.py DIR ROUNDS
# Lines: "ready", "check N ok" / "check N FAIL: why", "changed N", "done".
import os
import sys
import time

MIB = 1 << 20


def extents(fd, size):
    """[(start, end)] of the data of the file (SEEK_DATA/SEEK_HOLE)."""
    out, off = [], 0
    while off < size:
        try:
            d = os.lseek(fd, off, os.SEEK_DATA)
        except OSError:
            break
        h = os.lseek(fd, d, os.SEEK_HOLE)
        out.append((d, h))
        off = h
    return out


def main():
    d, rounds = sys.argv[1], int(sys.argv[2])
    data_path, scratch_path = os.path.join(d, 'sparse.bin'), os.path.join(d, 'scratch.tmp')
    fd = os.open(data_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o640)
    os.ftruncate(fd, 4 * MIB)
    os.pwrite(fd, b'A' * 4096, 0)
    os.pwrite(fd, b'B' * 8192, 2 * MIB)
    os.fsync(fd)
    sc = os.open(scratch_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(sc, b'scratch content\n' * 1000)
    # what both files are, to be checked before each change
    want = {'size': 4 * MIB, 'extents': extents(fd, 4 * MIB), 'bytes': os.pread(fd, 4 * MIB, 0),
            'mtime': os.fstat(fd).st_mtime_ns, 'mode': 0o640, 'scratch': b'scratch content\n' * 1000,
            'scratch_there': True}
    print('ready', flush=True)
    for n in range(1, rounds + 1):
        while not os.path.exists(os.path.join(d, f'go-{n}')):
            time.sleep(0.02)
        st = os.fstat(fd)
        problems = []
        if st.st_size != want['size']:
            problems.append(f'size {st.st_size} instead of {want["size"]}')
        if os.pread(fd, want['size'] + 1, 0) != want['bytes']:
            problems.append('content differs')
        if extents(fd, st.st_size) != want['extents']:
            problems.append(f'data at {extents(fd, st.st_size)} instead of {want["extents"]}')
        if st.st_mtime_ns != want['mtime']:
            problems.append(f'mtime {st.st_mtime_ns} instead of {want["mtime"]}')
        if st.st_mode & 0o7777 != want['mode']:
            problems.append(f'mode {oct(st.st_mode & 0o7777)}')
        if os.pread(sc, 1 << 20, 0) != want['scratch']:
            problems.append('the scratch file\'s content differs')
        there = os.path.exists(scratch_path)
        if there != want['scratch_there']:
            problems.append(f'the scratch file is {"there" if there else "gone"}')
        elif there and (os.stat(scratch_path).st_ino != os.fstat(sc).st_ino or os.stat(scratch_path).st_mode & 0o7777 != 0o600):
            problems.append('the scratch file at its path is not the open one, or its mode changed')
        print(f'check {n} ' + ('ok' if not problems else 'FAIL: ' + '; '.join(problems)), flush=True)
        # change everything after the checkpoint: fill a hole, rewrite in place, grow, remove the scratch file
        os.pwrite(fd, b'C' * 4096, 1 * MIB + 4096 * n)
        os.pwrite(fd, b'D' * 100, 10)
        os.pwrite(fd, b'E' * 4096, 5 * MIB + n)
        os.pwrite(sc, b'changed', 0)
        if there:
            os.unlink(scratch_path)
        time.sleep(0.01)
        want = {'size': os.fstat(fd).st_size, 'extents': extents(fd, os.fstat(fd).st_size),
                'bytes': os.pread(fd, os.fstat(fd).st_size + 1, 0), 'mtime': os.fstat(fd).st_mtime_ns,
                'mode': 0o640, 'scratch': os.pread(sc, 1 << 20, 0), 'scratch_there': False}
        print(f'changed {n}', flush=True)
    print('done', flush=True)


main()
