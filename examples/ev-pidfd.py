# A parent watches its child through a pidfd (os.pidfd_open) with select
# and reaps it when the pidfd turns readable. After a restart the pidfd
# must still refer to the child: the parent sees it exit, with its status.
# It also holds pidfds of two children that exited and were reaped (two
# descriptions of one, one of them non-blocking, and one of the other):
# every tick they must still be readable, name no process (ESRCH), share
# an inode for one process and not across the two, and keep their flags.
# The child forks a grandchild; the parent holds a pidfd of its grandchild
# and the grandchild one of its grandparent (processes of the family that
# are not each other's children): each must keep naming that process.
import fcntl, os, select, signal, sys, time


def pidfd_pid(fd):
    """The PID a pidfd names (-1 once its process exited), from fdinfo."""
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("Pid:"):
                return int(line.split()[1])
    return None


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

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 30
grandparent = os.getpid()
r, w = os.pipe()
child = os.fork()
if child == 0:
    os.close(r)
    grandchild = os.fork()
    if grandchild == 0:
        up = os.pidfd_open(grandparent)
        for _ in range(steps):
            if pidfd_pid(up) != grandparent:
                print(f"FAIL the grandchild's pidfd names {pidfd_pid(up)}, not its grandparent {grandparent}", flush=True)
            time.sleep(0.2)
        os._exit(0)
    os.write(w, str(grandchild).encode())
    os.close(w)
    for _ in range(steps):
        time.sleep(0.2)
    os.waitpid(grandchild, 0)
    os._exit(7)

os.close(w)
gpid = int(os.read(r, 32))
os.close(r)
gfd = os.pidfd_open(gpid)
fd = os.pidfd_open(child)
tick = 0
while True:
    ready, _, _ = select.select([fd], [], [], 0.2)
    if ready:
        _, status = os.waitpid(child, 0)
        print(f"child exited {os.waitstatus_to_exitcode(status)}", flush=True)
        break
    check_dead(dead)
    if pidfd_pid(gfd) not in (gpid, -1):
        print(f"FAIL the pidfd of the grandchild names {pidfd_pid(gfd)}, not {gpid}", flush=True)
    tick += 1
    print(f"tick {tick}", flush=True)
