# A parent watches its child through a pidfd (os.pidfd_open) with select
# and reaps it when the pidfd turns readable. After a restart the pidfd
# must still refer to the child: the parent sees it exit, with its status.
import os, select, sys, time

child = os.fork()
if child == 0:
    for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 30):
        time.sleep(0.2)
    os._exit(7)

fd = os.pidfd_open(child)
tick = 0
while True:
    ready, _, _ = select.select([fd], [], [], 0.2)
    if ready:
        _, status = os.waitpid(child, 0)
        print(f"child exited {os.waitstatus_to_exitcode(status)}", flush=True)
        break
    tick += 1
    print(f"tick {tick}", flush=True)
