# A parent watches its child through a pidfd (os.pidfd_open) with select
# and reaps it when the pidfd turns readable. After a restart the pidfd
# must still refer to the child: the parent sees it exit, with its status.
# It also holds pidfds of two children that exited and were reaped (two
# descriptions of one, one of them non-blocking, and one of the other):
# every tick they must still be readable, name no process (ESRCH), share
# an inode for one process and not across the two, and keep their flags.
import fcntl, os, select, signal, sys, time


def dead_pidfds():
    fds = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        fds.append(os.pidfd_open(pid))
        if not fds[1:]:
            fds.append(os.pidfd_open(pid, os.O_NONBLOCK))
        os.waitpid(pid, 0)
    return fds


def check_dead(fds):
    a1, a2, b = fds
    ready, _, _ = select.select(fds, [], [], 0)
    if len(ready) != 3:
        print("FAIL a pidfd of an exited process is not readable", flush=True)
    for fd in fds:
        try:
            signal.pidfd_send_signal(fd, 0)
            print("FAIL a pidfd of an exited process names a process", flush=True)
        except ProcessLookupError:
            pass
    ino = [os.fstat(fd).st_ino for fd in fds]
    if ino[0] != ino[1] or ino[0] == ino[2]:
        print(f"FAIL pidfd inodes {ino}: one process's must be equal, two processes' differ", flush=True)
    if fcntl.fcntl(a1, fcntl.F_GETFL) & os.O_NONBLOCK or not fcntl.fcntl(a2, fcntl.F_GETFL) & os.O_NONBLOCK:
        print("FAIL the pidfds' flags changed", flush=True)


dead = dead_pidfds()

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
    check_dead(dead)
    tick += 1
    print(f"tick {tick}", flush=True)
