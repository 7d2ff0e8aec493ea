"""pty_input: a pseudo-terminal whose slave side has input it has not read.

    python3 pty_input.py FLAG [lines|partial|raw]

Opens a pty pair and, as a user typing into it would, writes into the
master:
- lines (default), in canonical mode with "!" as its VEOL (echo on):
  complete lines that each end another way: "hello\n", "a^V\nb\n" (a
  quoted newline inside), "eof-line^D", "^D" (an empty line: end of
  file), "x!" (VEOL); then "par", a line not yet ended;
- partial: "h^V^S^V\nel", a line not yet ended in canonical mode (echo
  on), holding a ^S and a newline quoted with ^V; a child holds the same
  terminal until FLAG exists;
- raw: "hel" with the slave in non-canonical mode (no echo).
It prints "written" and does not read the slave until FLAG exists (it
prints "waiting N" meanwhile); then, for partial and raw, it "types" the
rest ("lo\n"; "tial\n" for lines), reads the slave, prints "read <what
it read>" (for lines, one such line per read, as each read gives one
line) and "echo <what the master got back since>" (Python reprs), then
"tick N" lines until N = 60. The unread input is saved and put back
exactly: after a restart the reads give "hello\n", "a\nb\n", "eof-line",
"", "x!", "partial\n" (lines), "h\x13\nello\n" (partial) or "hello\n"
(raw), and the echo is only that of what was typed last (nothing echoed
twice).
"""
import os
import select
import sys
import termios
import time
import tty

flag = sys.argv[1]
mode = sys.argv[2] if len(sys.argv) > 2 else "lines"
m, s = os.openpty()
if mode == "raw":
    tty.setraw(s)
elif mode == "lines":
    attrs = termios.tcgetattr(s)
    attrs[6][termios.VEOL] = b"!"
    termios.tcsetattr(s, termios.TCSANOW, attrs)


def drain_master():
    """What the slave side wrote (the echo) that is there now."""
    got = b""
    while select.select([m], [], [], 0.05)[0]:
        got += os.read(m, 1000)
    return got


# partial: a child holds the same master (and slave) until FLAG exists, so
# that two processes of the family save the terminal
child = 0
if mode in ("partial", "lines"):
    child = os.fork()
    if child == 0:
        while not os.path.exists(flag):
            time.sleep(0.02)
        os._exit(0)
if mode == "lines":
    os.write(m, b"hello\na\x16\nb\neof-line\x04\x04x!par")
    drain_master()
elif mode == "partial":
    # ^V quotes the ^S (flow control) and the newline: both stay in the line
    os.write(m, b"h\x16\x13\x16\nel")
    drain_master()
else:
    os.write(m, b"hel")
    drain_master()
print("written", flush=True)
n = 0
while not os.path.exists(flag):
    n += 1
    if n % 10 == 0:
        print("waiting", n, flush=True)
    time.sleep(0.02)
if mode == "lines":
    os.write(m, b"tial\n")
    time.sleep(0.1)
    for _ in range(6):
        print("read", repr(os.read(s, 100)), flush=True)
    print("echo", repr(drain_master()), flush=True)
else:
    os.write(m, b"lo\n")
    time.sleep(0.1)
    got = b""
    while select.select([s], [], [], 0.05)[0] and not got.endswith(b"\n"):
        got += os.read(s, 100)
    print("read", repr(got), flush=True)
    print("echo", repr(drain_master()), flush=True)
if child:
    os.waitpid(child, 0)
for i in range(1, 61):
    print("tick", i, flush=True)
    time.sleep(0.05)
