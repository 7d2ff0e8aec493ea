// The ckrun command line: a thin layer over the library (index.ts).
// Each command imports what it needs when it runs: a restart starts its
// program sooner when it does not load inspect's or launch's code first.
import { FILES_POLICIES, parseSize, type FilesPolicy } from './files-policy.js';
import { displayPath, writeErr, writeOut } from './output.js';
import { internalSignalProblem, parseSignal, signalName, triggerSignalProblem } from './signals.js';

const VERSION = '0.1.0';

const MAIN_HELP = `Usage: ckrun [OPTIONS] [--] PROGRAM [ARGS...]
       ckrun checkpoint [--dir DIR]
       ckrun checkpoint --stream [--dir DIR] > STREAM
       ckrun restart [--dir DIR | IMAGE | -] [OPTIONS]
       ckrun migrate [--dir DIR] --to COMMAND
       ckrun inspect IMAGE [--json] [--no-verify-data]
       ckrun verify [DIR | GENERATION] [--json] [--no-verify-data]
       ckrun status [--dir DIR] [--json]

Transparent checkpoint/restart for unmodified, dynamically linked Linux
programs. The first form runs PROGRAM under ckrun's shim: its stdin, stdout
and stderr are ckrun's, and ckrun exits with its status (128+N when a signal
N killed it). A checkpoint writes DIR/N/ (one image per process and a
manifest); \`ckrun restart\` continues the program from the newest one.

Options (first form):
  --dir DIR               checkpoint directory (default ./ckpt, created
                          mode 0700 when missing); only one ckrun session
                          may write to a directory at a time. It must be
                          yours and writable by no one else, and every
                          directory above it root's or yours and not
                          writable by others unless sticky (like /tmp);
                          a symbolic link on the way must be root's or
                          yours: anything else is refused
  --interval SECONDS      take a checkpoint every SECONDS (fractions allowed)
  --keep N                after each checkpoint, keep only the newest N
                          complete generations in DIR (default: all);
                          generations a kept one builds on are never needed
                          (it holds hard links to the images it refers to)
  --full-every K          every K-th checkpoint of a process is a full image,
                          the others store only what changed (default 10;
                          1: always full): a damaged image costs at most K
                          generations
  --signal NAME           the signal to ckrun that takes a checkpoint
                          (default USR2): USR1, SIGHUP, RTMIN+3, 12, ...
                          It is never passed on to the program.
  --checkpoint-on SIG[,SIG...]
                          when ckrun receives SIG (repeatable: USR1, TERM,
                          ...), take a checkpoint, then end the program
                          (every process of it, by SIGKILL: it never sees
                          SIG) and exit with status 75. If that checkpoint
                          fails, SIG is passed on to the program as without
                          this option, and ckrun exits with its status
                          (for batch jobs: USR1 with Slurm's
                          --signal=B:USR1@120; see README.md). SIG sent to
                          the program too, from outside (Slurm signals
                          every process of a job), is held back from it
                          for up to 2 s meanwhile (a restarted program
                          holds the signals its first launch named)
  --resume                continue the program from the newest complete
                          checkpoint in --dir when there is one (exactly
                          like ckrun restart --dir DIR: the same checks,
                          the same fallback to an older generation), else
                          start PROGRAM: one command for a job's first run
                          and every requeue. Refused, never started afresh,
                          when DIR holds checkpoints none of which can be
                          used, or checkpoints of another command line
  --keep-alive[=N]        when the program is killed by SIGKILL (the OOM
                          killer, kill -9) or a crash (SIGSEGV, SIGBUS,
                          SIGILL, SIGFPE, SIGABRT, SIGSYS), restart it from
                          the newest checkpoint in --dir, after 1 s, 2 s,
                          4 s... (at most 30 s), at most N times (default
                          3); each restart is said on stderr. Not when it
                          was asked to stop (SIGTERM, SIGINT, ...) or DIR
                          holds no checkpoint
  --internal-signal N     the real-time signal the shim uses inside the
                          program (default 63, must be 34..64)
  --files=POLICY          what each checkpoint keeps of the regular files
                          the program has open for writing or maps shared
                          (its stdout/stderr too, when they are files):
                          snapshot (default) saves what restart needs to
                          put them back exactly as they were at the
                          checkpoint (only blocks changed since the last
                          one; a file opened O_APPEND only as checksums,
                          and restart cuts it back); size only cuts them
                          back to their checkpoint size at restart; none
                          leaves them as they are
  --files-max SIZE        a checkpoint fails, naming the files, when the
                          files to snapshot hold more than SIZE (512M, 2G)
  --snapshot-dir DIR      each checkpoint also saves the tree under DIR
                          (repeatable; unchanged files linked from the
                          previous generation), and restart puts it back
                          as it was: files made after the checkpoint
                          removed, changed or removed ones written again.
                          DIR must be yours and writable by nobody else;
                          its files count against --files-max
  --portable              each checkpoint also keeps a copy of every file
                          the program maps privately (its executable,
                          libraries, mapped data files; linked from the
                          previous generation when unchanged), so that it
                          restarts where those files are missing or differ
  --compress[=LEVEL]      gzip every image once it is complete, to
                          DIR/N/<pid>.ckpt.gz (LEVEL 1..9, default 1: the
                          fastest). Trades checkpoint time for space:
                          compressed checkpoints are always full, never
                          incremental; restart decompresses them first.
  -v, --verbose           log every checkpoint and process on stderr
  -h, --help              show this help; \`ckrun COMMAND --help\` for a command
  --version               print ckrun's version

Signals: SIGINT is ignored by ckrun (the program, in the same process group,
gets it from the terminal); SIGTERM, SIGHUP and SIGQUIT are passed on to the
program unless --checkpoint-on names them; the trigger signal takes a
checkpoint.

Exit status: the program's (128+N when signal N killed it); 75 when a
--checkpoint-on signal took a checkpoint and ended the program (continue it
with ckrun --resume or ckrun restart); 127/126 when PROGRAM cannot be run;
2 for wrong usage; 70 for an internal error of ckrun.

Commands:
  checkpoint   ask the session writing to DIR for a checkpoint now
  restart      continue a program from a checkpoint (- : from a stream)
  migrate      move a running program to where COMMAND runs ckrun restart -
  inspect      show what an image holds
  verify       check every generation of DIR and say which can be restored
  status       show the session writing to DIR

Examples:
  ckrun --dir ckpt -- python3 loop.py &
  kill -USR2 %1                  # or: ckrun checkpoint --dir ckpt
  kill -9 %1; ckrun restart --dir ckpt
  ckrun inspect ckpt/1
  ckrun --resume --dir ckpt --checkpoint-on USR1,TERM -- ./simulation

Environment (for development and tests):
  CKRUN_SHIM_PATH     the shim to preload (empty: do not preload one)
  CKRUN_RESTORE_HOST  the restore host to run on restart
`;

const CHECKPOINT_HELP = `Usage: ckrun checkpoint [--dir DIR] [--portable] [--stream]

Asks the ckrun session writing to DIR for a checkpoint, waits until every
image is complete and on disk, and prints the new generation directory.
Only the session's user and root may ask. Every failure is one line on
stderr; the exit status says which it was:

  0   the checkpoint is on disk; its directory is printed
  1   the checkpoint failed (the reason is printed); the program runs on
      unharmed and the next checkpoint may succeed
  2   wrong usage
  3   no session writes to DIR
  4   the session ended before it answered (its program exited, or ckrun
      was killed); no checkpoint was taken
  5   the session is not yours: its socket is held by another user, or
      the session refused the request (you are neither its user nor root)
  70  an internal error of ckrun

Options:
  --dir DIR     the session's checkpoint directory (default ./ckpt)
  --portable    this generation also keeps a copy of every file the
                program maps privately, as ckrun --portable does for all
  --stream      also write the new generation, whole (every image, every
                older image an incremental one refers to, the manifest),
                to standard output as one stream for ckrun restart -, e.g.
                ckrun checkpoint --stream | ssh host ckrun restart -
                The program runs on here (ckrun migrate moves it).
  -h, --help    show this help
`;

/** Exit statuses of `ckrun checkpoint` (CHECKPOINT_HELP and README.md list them). */
const CHECKPOINT_EXIT = { failed: 1, usage: 2, noSession: 3, sessionEnded: 4, notYours: 5, internal: 70 } as const;

const RESTART_HELP = `Usage: ckrun restart [--dir DIR | IMAGE | -] [OPTIONS]

Continues a program from a checkpoint: the newest complete generation in DIR
(default ./ckpt), or IMAGE, which may be a generation directory (DIR/N), a
.ckpt or .ckpt.gz file, or a checkpoint directory. A compressed image is
decompressed into a hidden temporary file beside it, removed once the
program runs again. The generation is verified first, as one unit, before
any process exists: its manifest (checksum), every image the manifest names
(size and header checksum: no image of another generation), their header,
metadata and data checksums, and every older image an incremental one
refers to. When the newest generation of a directory cannot be used,
restart says so on stderr (which, why) and uses the newest one that
verifies; a generation or image named explicitly is never replaced: a
damaged one is refused with the name of the newest older one that
verifies. The program gets its original PID back
(in a new PID namespace when that PID is taken), its stdio are now this
ckrun's (those that were regular files are the same files again, at their
checkpoint offsets, unless --stdio=inherit), the files it writes are put
back as they were at the checkpoint (see --files), ckrun exits with its
status, and it can be checkpointed again.

With - the generation is read from standard input (what ckrun checkpoint
--stream or ckrun migrate writes) into the next generation of --dir
(default ./ckpt; vetted like ckrun --dir, created mode 0700), verified,
and restarted; the program's standard input is then /dev/null. A stream
cut short or damaged is refused before any process exists and nothing of
it is kept. Once the program runs, ckrun says on stderr
"ckrun restart: running (...)".

Options:
  --dir DIR               where further checkpoints go; without IMAGE also
                          where the image comes from (default: the directory
                          the image came from, else ./ckpt). It must pass
                          the same checks as ckrun --dir (see ckrun --help)
  --interval SECONDS      take a checkpoint every SECONDS
  --signal NAME           the signal to ckrun that takes a checkpoint (default USR2)
  --checkpoint-on SIG[,SIG...]
                          take a checkpoint when ckrun receives SIG, then end
                          the program; ckrun exits 75 (see ckrun --help)
  --keep N                after each checkpoint, keep only the newest N
                          complete generations in the checkpoint directory
  --full-every K          every K-th checkpoint of a process is a full image
                          (default 10; see ckrun --help)
  --compress[=LEVEL]      gzip the restarted program's checkpoints (LEVEL
                          1..9, default 1); they are then always full, never
                          incremental. Without it they are not compressed,
                          whatever the image restarted from was.
  --files=POLICY, --files-max SIZE
                          for the restarted program's checkpoints (see
                          ckrun --help; default: the policy of the image).
                          Whatever they say, the files the image's
                          checkpoint saved are put back first
  --snapshot-dir DIR      the restarted program's checkpoints also save DIR
                          (see ckrun --help), besides the directories the
                          image's checkpoint saved, which are put back first
                          and saved again
  --portable              the restarted program's checkpoints keep copies
                          of the files it maps (see ckrun --help)
  --stdio=inherit         the program's stdin/stdout/stderr that were
                          regular files at the checkpoint become this
                          ckrun's own (default: the same files again, at
                          their checkpoint offsets, their content rolled
                          back; terminals and pipes are always ckrun's)
  --new-pid-namespace     restore in a new PID namespace even if the PID is free
  --no-verify-data        check only the header and metadata checksums
                          (the restore host still checks the data)
  --trust-owner           restart a checkpoint directory, generation or image
                          that another user owns (without it, that is
                          refused). The program runs as the user, groups and
                          capabilities its image records, never as yours; an
                          image owned by an ordinary user that records
                          another user or capabilities is refused anyway
  -v, --verbose           log every checkpoint and process on stderr
  -h, --help              show this help

Who the program runs as: exactly the user and group IDs, supplementary
groups, capabilities, securebits and no_new_privs it had at the checkpoint.
Root may restart any of its own checkpoints (and others' with
--trust-owner), but never gives a program capabilities root does not have
here. An ordinary user restarts in a user namespace of their own: only
programs that ran as that user, with that user's group, no capabilities
and the user's own supplementary groups (which the program then sees as
65534, except the user's own group: a user namespace maps no others).
`;

const INSPECT_HELP = `Usage: ckrun inspect IMAGE [--json] [--no-verify-data]

Shows what an image holds: program, PID, threads (TID, instruction and stack
pointer, name), memory regions (address range, size, protection, what backs
them, bytes stored), descriptors, signal dispositions, pending signals,
timers and sizes. IMAGE is a .ckpt or .ckpt.gz file (decompressed into a
temporary file to be read), a generation directory (every
process in it) or a checkpoint directory (its newest generation). The image
is verified first (header, metadata and data checksums); a damaged image is
reported with the reason (exit status 1).

Options:
  --json             print the decoded metadata as JSON (64-bit integers
                     become numbers when exact, strings otherwise; byte
                     strings are hex)
  --no-verify-data   check only the header and metadata checksums (faster
                     for large images)
  -h, --help         show this help
`;

const VERIFY_HELP = `Usage: ckrun verify [DIR | GENERATION] [--json] [--no-verify-data]

Checks every complete generation of the checkpoint directory DIR (default
./ckpt), or the one GENERATION (DIR/N), the way a restart checks it before
it creates a process: the manifest and its checksum, every image it names
(size and header checksum), their header, metadata and data checksums,
every older image an incremental one refers to (by identity), and then the
restore host's own checks (files the program mapped, the kernel's vdso, the
shim ABI). Prints for each generation whether it can be restored and why
not; an image file several generations share (incremental images hard-link
the images they refer to) that is damaged is reported once, with every
generation it makes unrestorable.

Exit status: 0 when every generation checked can be restored, 1 when one or
more cannot (or there is none), 2 for a usage error.

Options:
  --json             print the report as JSON
  --no-verify-data   check only headers, metadata and manifests (faster)
  -h, --help         show this help
`;

const MIGRATE_HELP = `Usage: ckrun migrate [--dir DIR] --to COMMAND [--rounds N]

Moves the program of the session writing to DIR (default ./ckpt) to where
COMMAND (run by /bin/sh, its standard input the stream) runs
ckrun restart -, e.g. --to 'ssh host ckrun restart - --dir /srv/ck'.
Iterative pre-copy: checkpoints are taken while the program runs and
streamed as they complete, each after the first carrying only the pages
written since (incremental), until one is small (8 MiB) or no longer
shrinks (or after N rounds, default 6); then one last checkpoint keeps the
program stopped while its few pages are streamed and the target restarts
it. Only when the target says the program runs there is it ended here; if
the target fails first, the program runs on here, unharmed.

ckrun migrate then passes on the target command's output and exits with
its status (the program's, where it runs now). Exit status 1 when the
migration failed (the program runs on here), 3 when no session writes to
DIR.

Options:
  --dir DIR       the session's checkpoint directory (default ./ckpt)
  --to COMMAND    where the program goes: a command that runs ckrun restart -
  --rounds N      pre-copy rounds at most before the stop (default 6)
  -h, --help      show this help
`;

const STATUS_HELP = `Usage: ckrun status [--dir DIR] [--json]

Shows the ckrun session writing to DIR (default ./ckpt): ckrun's PID, the
program, its processes, the last generation. Only the session's user and
root may ask. Exits 1 when no session answers, when the session refused
(you are neither its user nor root), or when its socket is held by another
user (ckrun does not talk to it).

Options:
  --dir DIR   the session's checkpoint directory (default ./ckpt)
  --json      print the status as JSON
  -h, --help  show this help
`;

class UsageError extends Error {
  constructor(
    message: string,
    readonly command: string,
  ) {
    super(message);
  }
}

interface OptionSpec {
  /** Long name without dashes. */
  name: string;
  short?: string;
  /** Takes a value. */
  value?: boolean;
  /** May take a value, only as `--name=VALUE` (a bare `--name` is a flag). */
  optionalValue?: boolean;
  /** May be given more than once: the values are joined with commas (with NUL when `join` says so: paths). */
  repeat?: boolean;
  join?: string;
}

interface Parsed {
  opts: Map<string, string | true>;
  positionals: string[];
  /** For the launch form: PROGRAM and its arguments. */
  rest: string[];
}

/**
 * Parses options. With stopAtPositional, the first non-option token and
 * everything after it are `rest` (PROGRAM ARGS...).
 */
function parse(command: string, specs: OptionSpec[], args: string[], stopAtPositional: boolean): Parsed {
  const opts = new Map<string, string | true>();
  const positionals: string[] = [];
  const where = command === '' ? '' : ` for ckrun ${command}`;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      if (stopAtPositional) return { opts, positionals, rest: args.slice(i + 1) };
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (a.startsWith('-') && a !== '-') {
      let name: string;
      let inline: string | undefined;
      if (a.startsWith('--')) {
        const eq = a.indexOf('=');
        name = eq < 0 ? a.slice(2) : a.slice(2, eq);
        inline = eq < 0 ? undefined : a.slice(eq + 1);
      } else {
        if (a.length !== 2) throw new UsageError(`unknown option '${a}'${where}`, command);
        const s = specs.find((x) => x.short === a.slice(1));
        if (!s) throw new UsageError(`unknown option '${a}'${where}`, command);
        name = s.name;
      }
      const spec = specs.find((x) => x.name === name);
      if (!spec) throw new UsageError(`unknown option '${a}'${where}`, command);
      if (spec.optionalValue) {
        opts.set(name, inline ?? true);
      } else if (spec.value) {
        let v = inline;
        if (v === undefined) {
          if (i + 1 >= args.length) throw new UsageError(`option '--${name}' needs a value`, command);
          v = args[++i]!;
        }
        const before = opts.get(name);
        opts.set(name, spec.repeat && typeof before === 'string' ? `${before}${spec.join ?? ','}${v}` : v);
      } else {
        if (inline !== undefined) throw new UsageError(`option '--${name}' takes no value`, command);
        opts.set(name, true);
      }
      continue;
    }
    if (stopAtPositional) return { opts, positionals, rest: args.slice(i) };
    positionals.push(a);
  }
  return { opts, positionals, rest: [] };
}

function str(p: Parsed, name: string): string | undefined {
  const v = p.opts.get(name);
  return typeof v === 'string' ? v : undefined;
}

function flag(p: Parsed, name: string): boolean {
  return p.opts.get(name) === true;
}

function seconds(p: Parsed, command: string): number | undefined {
  const v = str(p, 'interval');
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n <= 0)
    throw new UsageError(`--interval needs a positive number of seconds, not '${v}'`, command);
  return n;
}

/** A whole number of at least 1 (`--keep`, `--full-every`), or undefined when absent. */
function count(p: Parsed, name: string, command: string): number | undefined {
  const v = str(p, name);
  if (v === undefined) return undefined;
  if (!/^[1-9][0-9]{0,8}$/.test(v.trim())) throw new UsageError(`--${name} needs a whole number of at least 1, not '${v}'`, command);
  return Number(v);
}

function triggerSignal(p: Parsed, command: string): number | undefined {
  const v = str(p, 'signal');
  if (v === undefined) return undefined;
  let n: number;
  try {
    n = parseSignal(v);
  } catch (e) {
    throw new UsageError(`--signal: ${(e as Error).message}`, command);
  }
  const problem = triggerSignalProblem(n);
  if (problem) throw new UsageError(`--signal ${v}: ${signalName(n)} cannot trigger checkpoints: ${problem}`, command);
  return n;
}

/** `--checkpoint-on SIG[,SIG...]` (repeatable), checked against the trigger signal; undefined when absent. */
function checkpointOnSignals(p: Parsed, command: string, trigger: number | undefined): number[] | undefined {
  const v = str(p, 'checkpoint-on');
  if (v === undefined) return undefined;
  const out: number[] = [];
  for (const word of v.split(',')) {
    let n: number;
    try {
      n = parseSignal(word);
    } catch (e) {
      throw new UsageError(`--checkpoint-on: ${(e as Error).message}`, command);
    }
    const problem = triggerSignalProblem(n);
    if (problem) throw new UsageError(`--checkpoint-on ${word}: ${signalName(n)} cannot take checkpoints: ${problem}`, command);
    if (n === (trigger ?? DEFAULT_TRIGGER))
      throw new UsageError(
        `--checkpoint-on ${word}: ${signalName(n)} is already the signal that takes a checkpoint and lets the program run on (--signal); choose another for one of them`,
        command,
      );
    if (!out.includes(n)) out.push(n);
  }
  return out;
}

/** SIGUSR2: session.ts's DEFAULT_TRIGGER_SIGNAL (not imported: the CLI loads session.js only when it runs one). */
const DEFAULT_TRIGGER = 12;

function internalSignal(p: Parsed, command: string): number | undefined {
  const v = str(p, 'internal-signal');
  if (v === undefined) return undefined;
  let n: number;
  try {
    n = parseSignal(v);
  } catch (e) {
    throw new UsageError(`--internal-signal: ${(e as Error).message}`, command);
  }
  const problem = internalSignalProblem(n);
  if (problem) throw new UsageError(`--internal-signal ${v}: ${problem}`, command);
  return n;
}

/** `--compress` → true (the default level), `--compress=LEVEL` → LEVEL; undefined when absent. */
function compression(p: Parsed, command: string): boolean | number | undefined {
  const v = p.opts.get('compress');
  if (v === undefined || v === true) return v;
  const n = Number(v);
  if (!/^[1-9]$/.test(v.trim()) || !Number.isInteger(n))
    throw new UsageError(`--compress=LEVEL needs a level from 1 (fastest) to 9 (smallest), not '${v}'`, command);
  return n;
}

const COMPRESS: OptionSpec = { name: 'compress', optionalValue: true };
const HYGIENE: OptionSpec[] = [
  { name: 'keep', value: true },
  { name: 'full-every', value: true },
  { name: 'files', value: true },
  { name: 'files-max', value: true },
  { name: 'portable' },
  { name: 'snapshot-dir', value: true, repeat: true, join: '\0' },
];

/** `--files=snapshot|size|none`, or undefined when absent. */
function filesPolicy(p: Parsed, command: string): FilesPolicy | undefined {
  const v = str(p, 'files');
  if (v === undefined) return undefined;
  if (!(FILES_POLICIES as readonly string[]).includes(v))
    throw new UsageError(`--files takes snapshot (the default), size or none, not '${v}'`, command);
  return v as FilesPolicy;
}

/** `--snapshot-dir DIR` (repeatable): each vetted and resolved now (SnapshotDirError names the one refused). */
async function snapshotDirs(p: Parsed, command: string): Promise<string[] | undefined> {
  const v = str(p, 'snapshot-dir');
  if (v === undefined) return undefined;
  const { vetSnapshotDir, SnapshotDirError } = await import('./snapdir.js');
  try {
    return v.split('\0').map((d) => vetSnapshotDir(d));
  } catch (e) {
    if (e instanceof SnapshotDirError) throw new UsageError(e.message, command);
    throw e;
  }
}

/** `--files-max SIZE` in bytes (K, M, G, T suffixes), or undefined when absent. */
function filesMax(p: Parsed, command: string): number | undefined {
  const v = str(p, 'files-max');
  if (v === undefined) return undefined;
  const n = parseSize(v);
  if (n === undefined) throw new UsageError(`--files-max needs a size such as 512M or 2G, not '${v}'`, command);
  return n;
}
const HELP: OptionSpec[] = [{ name: 'help', short: 'h' }];
const VERBOSE: OptionSpec = { name: 'verbose', short: 'v' };

/** `--keep-alive` → the default count, `--keep-alive=N` → N; undefined when absent. */
function keepAliveCount(p: Parsed, command: string): number | true | undefined {
  const v = p.opts.get('keep-alive');
  if (v === undefined || v === true) return v;
  if (!/^[1-9][0-9]{0,3}$/.test(v.trim())) throw new UsageError(`--keep-alive=N needs a whole number of restarts from 1 to 9999, not '${v}'`, command);
  return Number(v);
}

interface StopGuard {
  /** The session a --checkpoint-on signal goes to from now on (one that came before goes to it now). */
  attach(session: { checkpointAndStop(sig: number): Promise<void> }): void;
  /** Between sessions (--keep-alive): signals are noted again. */
  detach(): void;
  /** A --checkpoint-on signal that came while no session ran. */
  readonly pending: number | undefined;
}

/**
 * --checkpoint-on signals for ckrun's whole run: one that arrives while no
 * session runs yet (a restart verifies its images first, which takes a
 * while for large ones) or between two (--keep-alive) is noted instead of
 * ending ckrun by its default action, and handed to the next session.
 * (A session has watchers of its own too; a second request is ignored.)
 */
async function stopGuard(signals: number[] | undefined): Promise<StopGuard> {
  let current: { checkpointAndStop(sig: number): Promise<void> } | undefined;
  let pending: number | undefined;
  if (signals && signals.length > 0) {
    const { watchSignal } = await import('./native.js');
    for (const sig of signals)
      watchSignal(sig, () => {
        if (current) void current.checkpointAndStop(sig);
        else pending ??= sig;
      });
  }
  return {
    attach(session) {
      current = session;
      const sig = pending;
      pending = undefined;
      if (sig !== undefined) void session.checkpointAndStop(sig);
    },
    detach() {
      current = undefined;
    },
    get pending() {
      return pending;
    },
  };
}

/** ckrun's exit status for the end of a session: the program's, or STOPPED_AFTER_CHECKPOINT. */
function sessionStatus(st: { status: number; stopped?: unknown }, stoppedStatus: number): number {
  return st.stopped ? stoppedStatus : st.status;
}

/** A restart whose restore host failed before the program ran: said like `ckrun restart` says it. */
function restoreFailed(prefix: string, image: string, st: { signal: number | null; code: number | null; status: number }): number {
  const how = st.signal !== null ? `was killed by ${signalName(st.signal)}` : `exited with status ${st.code}`;
  writeErr(
    `${prefix}: restoring ${displayPath(image)} failed: the restore host ${how} before the program ran again ` +
      `(its reason is above); the image is unchanged\n`,
  );
  return st.status !== 0 ? st.status : 1;
}

async function runLaunch(args: string[]): Promise<number> {
  const p = parse(
    '',
    [
      ...HELP,
      VERBOSE,
      COMPRESS,
      ...HYGIENE,
      { name: 'dir', value: true },
      { name: 'interval', value: true },
      { name: 'signal', value: true },
      { name: 'checkpoint-on', value: true, repeat: true },
      { name: 'resume' },
      { name: 'keep-alive', optionalValue: true },
      { name: 'internal-signal', value: true },
      { name: 'version' },
    ],
    args,
    true,
  );
  if (flag(p, 'help')) {
    writeOut(MAIN_HELP);
    return 0;
  }
  if (flag(p, 'version')) {
    writeOut(`ckrun ${VERSION}\n`);
    return 0;
  }
  if (p.rest.length === 0) throw new UsageError('no PROGRAM given', '');
  const trigger = triggerSignal(p, '');
  const keepAliveOpt = keepAliveCount(p, '');
  const common = {
    dir: str(p, 'dir'),
    interval: seconds(p, ''),
    triggerSignal: trigger,
    checkpointOn: checkpointOnSignals(p, '', trigger),
    compress: compression(p, ''),
    keep: count(p, 'keep', ''),
    fullEvery: count(p, 'full-every', ''),
    files: filesPolicy(p, ''),
    filesMax: filesMax(p, ''),
    snapshotDirs: await snapshotDirs(p, ''),
    portable: flag(p, 'portable'),
    verbose: flag(p, 'verbose'),
  };
  const launchOpts = { ...common, program: p.rest[0]!, args: p.rest.slice(1), internalSignal: internalSignal(p, '') };
  const guard = await stopGuard(common.checkpointOn);
  const { STOPPED_AFTER_CHECKPOINT } = await import('./session.js');
  let session: import('./session.js').Session;
  /** The image the current session was restarted from, if it was. */
  let restoredFrom: string | undefined;
  if (flag(p, 'resume')) {
    const { resumeOrLaunch } = await import('./resume.js');
    const r = await resumeOrLaunch({ ...launchOpts, warn: (line) => writeErr(`ckrun: ${line}\n`) });
    session = r.session;
    restoredFrom = r.restartedFrom;
    if (restoredFrom && common.verbose) writeErr(`ckrun: --resume: continuing from ${displayPath(restoredFrom)}\n`);
  } else {
    const { launch } = await import('./session.js');
    session = await launch(launchOpts);
  }
  guard.attach(session);
  let st = await session.exited;
  if (keepAliveOpt !== undefined) {
    const { keepAlive, DEFAULT_KEEP_ALIVE, unaskedDeath } = await import('./resume.js');
    const { restart } = await import('./restart.js');
    const { resolve } = await import('node:path');
    const { DEFAULT_DIR } = await import('./protocol.js');
    const dir = resolve(common.dir ?? DEFAULT_DIR);
    st = await keepAlive(session, {
      max: keepAliveOpt === true ? DEFAULT_KEEP_ALIVE : keepAliveOpt,
      dir,
      log: (line) => writeErr(`ckrun: --keep-alive: ${line}\n`),
      ended: () => guard.detach(),
      stopRequested: () => guard.pending,
      restart: async () => {
        const s = await restart({ ...common, dir, warn: (line) => writeErr(`ckrun: ${line}\n`) });
        restoredFrom = s.generation?.path ?? s.image.path;
        session = s;
        guard.attach(s);
        return s;
      },
    });
    // a --checkpoint-on signal while the program was down: its newest checkpoint is where it stopped
    if (guard.pending !== undefined && unaskedDeath(st) !== undefined) return STOPPED_AFTER_CHECKPOINT;
  }
  if (restoredFrom && !st.joined) return restoreFailed('ckrun', restoredFrom, st);
  return sessionStatus(st, STOPPED_AFTER_CHECKPOINT);
}

async function runCheckpoint(args: string[]): Promise<number> {
  const p = parse('checkpoint', [...HELP, { name: 'dir', value: true }, { name: 'portable' }, { name: 'stream' }], args, false);
  if (flag(p, 'help')) {
    writeOut(CHECKPOINT_HELP);
    return 0;
  }
  if (p.positionals.length > 0) throw new UsageError(`unexpected argument '${p.positionals[0]}' (use --dir DIR)`, 'checkpoint');
  const stream = flag(p, 'stream');
  if (stream && process.stdout.isTTY)
    throw new UsageError('--stream writes a binary stream to standard output, which is a terminal: redirect it to a file or pipe it to ckrun restart -', 'checkpoint');
  const { CheckpointError, requestCheckpoint } = await import('./checkpoint-client.js');
  const { NoSessionError, RefusedError, SessionLostError, UntrustedSessionError } = await import('./protocol.js');
  try {
    const gen = await requestCheckpoint(str(p, 'dir'), { portable: flag(p, 'portable') });
    if (!stream) {
      writeOut(`${gen}\n`);
      return 0;
    }
    const { streamGeneration } = await import('./stream.js');
    try {
      await streamGeneration(gen, process.stdout);
    } catch (e) {
      writeErr(`ckrun checkpoint: the checkpoint ${displayPath(gen)} is on disk, but writing it to standard output failed: ${oneLineMessage(e)}; the program runs on\n`);
      return CHECKPOINT_EXIT.failed;
    }
    return 0;
  } catch (e) {
    // one line each, never a stack trace: scripts read the status, people the line
    const fail = (code: number, line: string): number => {
      writeErr(`ckrun checkpoint: ${line}\n`);
      return code;
    };
    if (e instanceof CheckpointError) return fail(CHECKPOINT_EXIT.failed, `the checkpoint failed: ${e.message}`);
    if (e instanceof NoSessionError) return fail(CHECKPOINT_EXIT.noSession, e.message);
    if (e instanceof SessionLostError) return fail(CHECKPOINT_EXIT.sessionEnded, `${e.message}; no checkpoint was taken`);
    if (e instanceof UntrustedSessionError)
      return fail(CHECKPOINT_EXIT.notYours, `${e.message}; is --dir the directory of your session?`);
    if (e instanceof RefusedError) return fail(CHECKPOINT_EXIT.notYours, e.message);
    return fail(CHECKPOINT_EXIT.internal, `internal error: ${oneLineMessage(e)}`);
  }
}

/** An error's message on one line. */
function oneLineMessage(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).replace(/\s*\n\s*/g, ' ').trim();
}

/** `--stdio=inherit` (or `--stdio=saved`, the default). */
function stdioChoice(p: Parsed): boolean | undefined {
  const v = str(p, 'stdio');
  if (v === undefined || v === 'saved') return undefined;
  if (v !== 'inherit') throw new UsageError(`--stdio takes inherit or saved, not '${v}'`, 'restart');
  return true;
}

/** `--adopt PID:FD` (from the restore host, never from users). */
function adoption(text: string | undefined): { pid: number; fd: number } | undefined {
  if (text === undefined) return undefined;
  const m = /^([1-9][0-9]*):([0-9]+)$/.exec(text);
  if (!m) throw new UsageError(`--adopt takes PID:FD (it is for the restore host), not '${text}'`, 'restart');
  return { pid: Number(m[1]), fd: Number(m[2]) };
}

async function runRestart(args: string[]): Promise<number> {
  const p = parse(
    'restart',
    [
      ...HELP,
      VERBOSE,
      COMPRESS,
      ...HYGIENE,
      { name: 'dir', value: true },
      { name: 'interval', value: true },
      { name: 'signal', value: true },
      { name: 'checkpoint-on', value: true, repeat: true },
      { name: 'new-pid-namespace' },
      { name: 'no-verify-data' },
      { name: 'trust-owner' },
      { name: 'stdio', value: true },
      // internal: bin/ckrun's restore host restored the program already (preload/front.c)
      { name: 'adopt', value: true },
    ],
    args,
    false,
  );
  if (flag(p, 'help')) {
    writeOut(RESTART_HELP);
    return 0;
  }
  if (p.positionals.length > 1) throw new UsageError(`more than one IMAGE given ('${p.positionals[1]}')`, 'restart');
  const fromStream = p.positionals[0] === '-';
  if (fromStream && process.stdin.isTTY)
    throw new UsageError("'-' reads a stream from standard input, which is a terminal: pipe ckrun checkpoint --stream into it", 'restart');
  const { restart } = await import('./restart.js');
  const trigger = triggerSignal(p, 'restart');
  const stopOn = checkpointOnSignals(p, 'restart', trigger);
  const guard = await stopGuard(stopOn);
  const { restartFromStream } = fromStream ? await import('./restart-stream.js') : { restartFromStream: undefined };
  const options = {
    image: fromStream ? undefined : p.positionals[0],
    dir: str(p, 'dir'),
    interval: seconds(p, 'restart'),
    triggerSignal: trigger,
    checkpointOn: stopOn,
    compress: compression(p, 'restart'),
    keep: count(p, 'keep', 'restart'),
    fullEvery: count(p, 'full-every', 'restart'),
    files: filesPolicy(p, 'restart'),
    filesMax: filesMax(p, 'restart'),
    snapshotDirs: await snapshotDirs(p, 'restart'),
    portable: flag(p, 'portable'),
    stdioInherit: stdioChoice(p),
    verbose: flag(p, 'verbose'),
    newPidNamespace: flag(p, 'new-pid-namespace'),
    verifyData: !flag(p, 'no-verify-data'),
    trustOwner: flag(p, 'trust-owner'),
    adopt: adoption(str(p, 'adopt')),
  };
  const session = restartFromStream ? await restartFromStream(options, process.stdin) : await restart(options);
  guard.attach(session);
  const st = await session.exited;
  if (!st.joined) return restoreFailed('ckrun restart', session.image.path, st);
  const { STOPPED_AFTER_CHECKPOINT } = await import('./session.js');
  return sessionStatus(st, STOPPED_AFTER_CHECKPOINT);
}

async function runInspect(args: string[]): Promise<number> {
  const p = parse('inspect', [...HELP, { name: 'json' }, { name: 'no-verify-data' }], args, false);
  if (flag(p, 'help')) {
    writeOut(INSPECT_HELP);
    return 0;
  }
  if (p.positionals.length === 0) throw new UsageError('no IMAGE given', 'inspect');
  if (p.positionals.length > 1) throw new UsageError(`more than one IMAGE given ('${p.positionals[1]}')`, 'inspect');
  const { formatInspection, inspectImage, inspectionJson } = await import('./inspect.js');
  const i = await inspectImage(p.positionals[0]!, { verifyData: !flag(p, 'no-verify-data') });
  writeOut(flag(p, 'json') ? JSON.stringify(inspectionJson(i), null, 2) + '\n' : formatInspection(i));
  return 0;
}

async function runVerify(args: string[]): Promise<number> {
  const p = parse('verify', [...HELP, { name: 'json' }, { name: 'no-verify-data' }, { name: 'dir', value: true }], args, false);
  if (flag(p, 'help')) {
    writeOut(VERIFY_HELP);
    return 0;
  }
  if (p.positionals.length > 1) throw new UsageError(`more than one DIR given ('${p.positionals[1]}')`, 'verify');
  const { resolve } = await import('node:path');
  const { existsSync } = await import('node:fs');
  const { formatVerifyReport, verifyDirectory } = await import('./verify.js');
  const { hostCheck } = await import('./verify-host.js');
  const target = resolve(p.positionals[0] ?? str(p, 'dir') ?? 'ckpt');
  if (!existsSync(target)) {
    writeErr(`ckrun verify: ${displayPath(target)} does not exist\n`);
    return 1;
  }
  const verifyData = !flag(p, 'no-verify-data');
  // what the restore host is told about copies comes from the generation, never from this environment
  const own = { CKRUN_FILES_SAME: undefined, CKRUN_FILES_CARRIED: undefined, CKRUN_CARRIED_DIR: undefined };
  const report = await verifyDirectory(target, { verifyData, hostCheck: (g, env) => hostCheck(g, { ...process.env, ...own, ...env }) });
  writeOut(flag(p, 'json') ? JSON.stringify(report, null, 2) + '\n' : formatVerifyReport(report));
  return report.generations.length > 0 && report.generations.every((g) => g.restorable) ? 0 : 1;
}

async function runStatus(args: string[]): Promise<number> {
  const p = parse('status', [...HELP, { name: 'dir', value: true }, { name: 'json' }], args, false);
  if (flag(p, 'help')) {
    writeOut(STATUS_HELP);
    return 0;
  }
  if (p.positionals.length > 0) throw new UsageError(`unexpected argument '${p.positionals[0]}' (use --dir DIR)`, 'status');
  const { sessionStatus } = await import('./checkpoint-client.js');
  const { canonicalDir, DEFAULT_DIR, NoSessionError } = await import('./protocol.js');
  const s = await sessionStatus(str(p, 'dir'));
  if (!s) throw new NoSessionError(canonicalDir(str(p, 'dir') ?? DEFAULT_DIR), 'none');
  if (flag(p, 'json')) writeOut(JSON.stringify(s, null, 2) + '\n');
  else
    writeOut(
      `ckrun ${s.pid} writes to ${s.dir}\n` +
        `program: ${s.argv.join(' ')} (pid ${s.root ?? '?'})\n` +
        `processes: ${s.processes.length ? s.processes.join(' ') : 'none'}\n` +
        `last generation: ${s.lastGeneration ?? 'none in this session'}${s.checkpointing ? ' (checkpoint running)' : ''}\n` +
        (s.restoredFrom ? `restored from: ${s.restoredFrom}\n` : ''),
    );
  return 0;
}

async function runMigrate(args: string[]): Promise<number> {
  const p = parse('migrate', [...HELP, { name: 'dir', value: true }, { name: 'to', value: true }, { name: 'rounds', value: true }], args, false);
  if (flag(p, 'help')) {
    writeOut(MIGRATE_HELP);
    return 0;
  }
  if (p.positionals.length > 0) throw new UsageError(`unexpected argument '${p.positionals[0]}' (quote COMMAND: --to 'ssh host ckrun restart -')`, 'migrate');
  const to = str(p, 'to');
  if (!to) throw new UsageError('--to COMMAND is needed: where the program goes', 'migrate');
  const { migrate, MigrateError } = await import('./migrate.js');
  const { NoSessionError } = await import('./protocol.js');
  const mib = (n: number): string => `${(n / (1 << 20)).toFixed(1)} MiB`;
  try {
    const r = await migrate({
      dir: str(p, 'dir'),
      to,
      maxRounds: count(p, 'rounds', 'migrate'),
      onRound: (x) => writeErr(`ckrun migrate: round ${x.round}: ${mib(x.bytes)} sent${x.linked ? ` (${x.linked} files already there)` : ''} in ${x.ms} ms\n`),
    });
    const total = [...r.rounds, r.final].reduce((a, x) => a + x.bytes, 0);
    writeErr(
      `ckrun migrate: the program runs on the target and was ended here: ${r.rounds.length} round${r.rounds.length === 1 ? '' : 's'} while it ran, ` +
        `then ${mib(r.final.bytes)} while it stood still; ${mib(total)} in all; it stood still at most ${r.stoodStillMs} ms\n`,
    );
    return await r.targetExit;
  } catch (e) {
    if (e instanceof MigrateError) {
      writeErr(`ckrun migrate: ${e.message}\n`);
      return 1;
    }
    if (e instanceof NoSessionError) {
      writeErr(`ckrun migrate: ${e.message}\n`);
      return 3;
    }
    throw e;
  }
}

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  checkpoint: runCheckpoint,
  migrate: runMigrate,
  restart: runRestart,
  inspect: runInspect,
  verify: runVerify,
  status: runStatus,
};

/** Runs the command line; resolves with the exit status. */
export async function main(args: string[]): Promise<number> {
  const cmd = args[0] !== undefined && Object.hasOwn(COMMANDS, args[0]) ? args[0] : '';
  const prefix = cmd === '' ? 'ckrun' : `ckrun ${cmd}`;
  try {
    if (args[0] === 'help') {
      writeOut(MAIN_HELP);
      return 0;
    }
    return cmd === '' ? await runLaunch(args) : await COMMANDS[cmd]!(args.slice(1));
  } catch (e) {
    if (e instanceof UsageError) {
      writeErr(`${prefix}: ${e.message}\nTry '${e.command === '' ? 'ckrun' : `ckrun ${e.command}`} --help' for more information.\n`);
      return 2;
    }
    // the modules that throw these are loaded already
    const [
      { NoSessionError, RefusedError, SessionLostError, UntrustedSessionError },
      { SessionError },
      { NativeLoadError },
      { ImageError },
      { InspectError },
      { ManifestError },
    ] = await Promise.all([
      import('./protocol.js'),
      import('./session.js'),
      import('./native.js'),
      import('./image.js'),
      import('./inspect.js'),
      import('./generations.js'),
    ]);
    if (e instanceof NoSessionError || e instanceof RefusedError || e instanceof SessionLostError) {
      writeErr(`${prefix}: ${e.message}\n`);
      return 1;
    }
    if (e instanceof UntrustedSessionError) {
      writeErr(`${prefix}: ${e.message}; is --dir the directory of your session?\n`);
      return 1;
    }
    if (e instanceof SessionError) {
      writeErr(`${prefix}: ${e.message}\n`);
      return e.exitCode;
    }
    if (e instanceof NativeLoadError) {
      writeErr(`${prefix}: ${e.message}\n`);
      return 70;
    }
    if (e instanceof ImageError || e instanceof InspectError || e instanceof ManifestError) {
      writeErr(`${prefix}: ${e.message}\n`);
      return 1;
    }
    // `ckrun checkpoint` is run by scripts: one line there too
    const detail = cmd === 'checkpoint' ? oneLineMessage(e) : e instanceof Error ? (e.stack ?? e.message) : String(e);
    writeErr(`${prefix}: internal error: ${detail}\n`);
    return 70;
  }
}
