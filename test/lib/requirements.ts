// What the test suite needs from the machine beyond Node, npm, python3,
// gcc and make: each command, and the Debian package that provides it.
// `npm test` runs test/lib/setup.ts first, which installs what is missing
// (as root) or stops at once naming the packages to install.
export interface Requirement {
  /** A command that must be on PATH (or, with `file`, what the file is). */
  command: string;
  /** A file that must exist instead of a command (a library). */
  file?: string;
  /** The Debian package that provides it. */
  package: string;
  /** Which tests need it. */
  usedBy: string;
}

export const REQUIREMENTS: readonly Requirement[] = [
  { command: 'redis-server', package: 'redis-server', usedBy: 'server-redis' },
  { command: 'redis-benchmark', package: 'redis-tools', usedBy: 'server-redis' },
  { command: 'nginx', package: 'nginx', usedBy: 'server-nginx (Debian defaults: master as root, workers as www-data)' },
  { command: 'ip', package: 'iproute2', usedBy: 'hosts (two network namespaces joined by a veth pair)' },
  { command: 'setpriv', package: 'util-linux', usedBy: 'nonroot, trust (tests as user nobody), memory-attrs (a restart without CAP_IPC_LOCK)' },
  { command: 'script', package: 'bsdutils', usedBy: 'eintr, terminal (a program in a pseudo-terminal of its own)' },
  { command: 'tmux', package: 'tmux', usedBy: 'terminal (less in a tmux window, restarted in another), helper-threads (vim in tmux)' },
  { command: 'less', package: 'less', usedBy: 'terminal (less in a tmux window, restarted in another)' },
  { command: 'unshare', package: 'util-linux', usedBy: 'tree-sessions (ckrun in a PID namespace whose session leader is outside it)' },
  { command: 'chrt', package: 'util-linux', usedBy: 'attrs (a restart run under SCHED_RR; a launch under SCHED_FIFO)' },
  { command: 'choom', package: 'util-linux', usedBy: 'attrs (a restart run at another oom_score_adj)' },
  { command: 'ionice', package: 'util-linux', usedBy: 'attrs (a restart run in the real-time I/O class)' },
  { command: 'nice', package: 'coreutils', usedBy: 'attrs (a restart run at nice -7; a launch at nice -5)' },
  { command: 'sqlite3', package: 'sqlite3', usedBy: 'files-rollback (the sqlite3 CLI between kill and restart, integrity_check)' },
  { command: 'python3', package: 'python3', usedBy: 'files-rollback (sqlite through python3), spine-python, tree-pool' },
  { command: 'gzip', package: 'gzip', usedBy: 'files-rollback (ckrun -- gzip -c FILE > out.gz)' },
  { command: 'make', package: 'make', usedBy: 'tree-make, examples' },
  { command: 'gcc', package: 'gcc', usedBy: 'tree-make (gcc with its temporary files), examples' },
  { command: 'strace', package: 'strace', usedBy: 'stopped (a program traced by another process, outside the session or inside it, is refused)' },
  { command: 'vim.basic', package: 'vim', usedBy: 'helper-threads (vim 9 keeps a SIGEV_THREAD timer)' },
  { command: 'slurmctld', package: 'slurmctld', usedBy: 'slurm (a controller of the test\'s own, in its temporary directory)' },
  { command: 'slurmd', package: 'slurmd', usedBy: 'slurm (one node: this machine)' },
  { command: 'sbatch', package: 'slurm-client', usedBy: 'slurm (sbatch, scontrol requeue, scancel --batch --signal)' },
  { command: 'munged', package: 'munge', usedBy: 'slurm (Slurm\'s authentication, with a key the test makes)' },
  { command: 'initdb', file: '/usr/lib/postgresql/15/bin/initdb', package: 'postgresql-15', usedBy: 'server-postgres (initdb and postgres of PostgreSQL 15)' },
  { command: 'psql', file: '/usr/lib/postgresql/15/bin/psql', package: 'postgresql-client-15', usedBy: 'server-postgres (the client inserting batches)' },
  { command: 'clang', package: 'clang', usedBy: 'fuzz (libFuzzer targets in fuzz/)' },
  {
    command: 'libFuzzer',
    file: '/usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a',
    package: 'libclang-rt-14-dev',
    usedBy: 'fuzz (libFuzzer targets in fuzz/)',
  },
];
