# A family in the session and process group of the ckrun it runs under, as
# when ckrun leads a new terminal's session: the program ckrun started
# forks and exits (its child becomes ckrun's), and that child forks a
# process that opens a session of its own. Prints "step N" lines, then
# "done"; a wrong group or session after a restart prints FAIL.
import os
import sys
import time

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 60
root = os.getpid()
if os.fork() > 0:
    os._exit(0)
while os.getppid() == root:  # until the root has exited and this process is ckrun's
    time.sleep(0.01)
ids = (os.getpgrp(), os.getsid(0))
child = os.fork()
if child == 0:
    os.setsid()
    while True:
        time.sleep(0.05)
while os.getsid(child) != child:
    time.sleep(0.01)
for i in range(1, steps + 1):
    # (its parent, ckrun, is the restore's orchestrator after a restart: README, Process)
    now = (os.getpgrp(), os.getsid(0), os.getsid(child))
    if now != (ids[0], ids[1], child):
        print(f"FAIL step {i}: group, session, child's session {now}, not {(ids[0], ids[1], child)}", flush=True)
        sys.exit(1)
    print(f"step {i}", flush=True)
    time.sleep(0.05)
os.kill(child, 9)
os.waitpid(child, 0)
print("done", flush=True)
