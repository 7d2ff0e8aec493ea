# A parent that runs a child in a session of its own
# (subprocess.Popen(start_new_session=True), as servers run their workers)
# and waits for it. The child appends "line N sid S pid P" to a file, one
# line every 20 ms, up to N; the parent prints how the child ended.
#
#   python3 popen_session.py FILE N
import os
import subprocess
import sys
import time

if len(sys.argv) > 3 and sys.argv[3] == '--child':
    path, last = sys.argv[1], int(sys.argv[2])
    with open(path, 'a') as f:
        for n in range(1, last + 1):
            f.write(f'line {n} sid {os.getsid(0)} pid {os.getpid()}\n')
            f.flush()
            time.sleep(0.02)
    sys.exit(0)

child = subprocess.Popen([sys.executable, __file__, sys.argv[1], sys.argv[2], '--child'], start_new_session=True)
print(f'child exited {child.wait()}', flush=True)
