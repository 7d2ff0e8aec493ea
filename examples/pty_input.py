"""pty_input: a pseudo-terminal whose slave side has input it has not read.

    python3 pty_input.py FLAG

Opens a pty pair, writes "hello\n" into the master and does not read the
slave until FLAG exists; then reads the line from the slave, prints it,
and prints "tick N" lines until N = 60. A checkpoint while the line waits
in the terminal is refused (ckrun cannot put processed input back); once
it is read, checkpoints work again.
"""
import os
import sys
import time

flag = sys.argv[1]
m, s = os.openpty()
os.write(m, b"hello\n")
print("written", flush=True)
while not os.path.exists(flag):
    time.sleep(0.02)
print("read", os.read(s, 100).decode().strip(), flush=True)
for i in range(1, 61):
    print("tick", i, flush=True)
    time.sleep(0.05)
