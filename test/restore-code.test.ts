// The code that runs after the restore host's address space is gone (the
// shim's `ckcore` section) must be self-contained: no libc calls, no
// PLT/GOT references, no TLS, no data relocations into it. objdump checks.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

test('the restore core in libckrun.so calls nothing outside itself', () => {
  const out = execFileSync(path.join(root, 'scripts/check-restore-code.sh'), [path.join(root, 'build/Release/libckrun.so')], {
    encoding: 'utf8',
  });
  assert.match(out, /ckcore ok .*self-contained/);
});

test('the shim depends on libc only and exports only what it wraps', () => {
  const lib = path.join(root, 'build/Release/libckrun.so');
  const needed = execFileSync('readelf', ['-dW', lib], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.includes('(NEEDED)'))
    .map((l) => /\[(.*)\]/.exec(l)?.[1]);
  assert.equal(needed, ['libc.so.6']);
  const exported = execFileSync('nm', ['-D', '--defined-only', lib], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ').pop());
  const wrapped = [
    'bsd_signal', 'close', 'close_range', 'closefrom', 'dup2', 'dup3', 'madvise', 'pthread_sigmask', 'sigaction',
    'signal', 'signalfd', 'sigprocmask', 'sigset', 'sigsuspend', 'sigtimedwait', 'sigwait', 'sigwaitinfo', 'sysv_signal',
    'inotify_add_watch',
    // SO_PEERCRED of a Unix socket a restart made names the original peer (preload/peercred.c)
    'getsockopt',
    'execve', 'execv', 'execvp', 'execvpe', 'execl', 'execle', 'execlp', 'fexecve', 'execveat', 'posix_spawn', 'posix_spawnp',
    // calls a checkpoint must not interrupt (preload/syscalls.c)
    'poll', '__poll_chk', 'ppoll', '__ppoll_chk', 'select', 'pselect', 'epoll_wait', 'epoll_pwait', 'epoll_pwait2',
    'semop', 'semtimedop', 'msgrcv', 'msgsnd', 'mq_receive', 'mq_timedreceive', 'mq_send', 'mq_timedsend',
    // the SysV objects the program uses (preload/shim.c, sysvnote.c)
    'shmget', 'shmat', 'shmctl', 'semget', 'semctl', 'msgget', 'msgctl',
    'pause', 'nanosleep', 'clock_nanosleep', 'usleep', 'sleep', 'syscall',
    // seccomp filters and the settings the kernel shows no one are recorded (preload/shim.c, seccomp.c, attrs.c)
    'prctl',
    // a file opened for writing is told to ckrun, which rolls it back even once closed (preload/written.c)
    'open', 'open64', 'openat', 'openat64', '__open_2', '__open64_2', '__openat_2', '__openat64_2', 'creat', 'creat64',
    'fopen', 'fopen64', 'freopen', 'freopen64',
    // files libc makes without open(), which a restart removes, and renames, which keep what they replace and tell the new name (preload/written.c)
    'mkstemp', 'mkstemp64', 'mkostemp', 'mkostemp64', 'mkstemps', 'mkstemps64', 'mkostemps', 'mkostemps64',
    'rename', 'renameat', 'renameat2',
    // directories, links, FIFOs and device nodes made after a checkpoint, which a restart removes (preload/written.c)
    'mkdir', 'mkdirat', 'symlink', 'symlinkat', 'link', 'linkat', 'mknod', 'mknodat', 'mkfifo', 'mkfifoat',
  ];
  assert.equal(exported.filter((s) => s !== 'ckrun_restore_main').sort(), wrapped.sort());
});

test.run();
