// The example programs (examples/): their names, building the C ones, the
// argv that runs each, and the data some of them read.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EXAMPLE_BIN, EXAMPLES, NODE } from './paths.js';

export const C_EXAMPLES = ['counter', 'threads', 'files', 'signals', 'mmap', 'dirty', 'idlers', 'fdnumbers', 'creds'] as const;
export type CExample = (typeof C_EXAMPLES)[number];
/** one program per kind of event descriptor (test/events.test.ts); built like the others, not in ALL_EXAMPLES */
export const EVENT_C_EXAMPLES = ['ev-timerfd', 'ev-signalfd', 'ev-inotify', 'ev-ptimer', 'ev-epoll', 'ev-inodel'] as const;
export type EventExample = (typeof EVENT_C_EXAMPLES)[number];
/** programs of the process-fidelity tests (test/eintr.test.ts, test/memory-*.test.ts); built like the others, not in ALL_EXAMPLES */
export const PROCESS_C_EXAMPLES = ['blocking', 'sparse', 'memattrs', 'clonefiles', 'attrs', 'sysv', 'sigev-aio', 'stopped', 'setxid', 'vecregs', 'shmsplit', 'rseqown', 'mapwrite', 'sigio', 'ghosts', 'gone', 'unixghost', 'memcorners', 'guardpage', 'vdsoclock', 'netcount', 'shmrmid', 'loginuid', 'reparented', 'lease', 'ptypacket', 'peercred', 'sockfilter', 'ipkinds', 'nsown', 'threadcreds', 'wakethread', 'release', 'getpidless', 'devnull', 'replaced', 'mapsread', 'hugetlb', 'unlinkmap', 'ptyhup'] as const;
export type ProcessExample = (typeof PROCESS_C_EXAMPLES)[number];
/** programs of the socket tests (test/sockets-*.test.ts); built like the others, not in ALL_EXAMPLES */
export const SOCKET_C_EXAMPLES = ['tcp-twopeers', 'tcp-states', 'unix-dgram', 'unaccepted', 'freebind', 'sockopts', 'tcpfin', 'udpshut', 'unixidle', 'sockbuf', 'tcp-stream', 'keepalive', 'netlink', 'closedclient', 'packet'] as const;
export type SocketExample = (typeof SOCKET_C_EXAMPLES)[number];
export type ExampleName = CExample | EventExample | ProcessExample | SocketExample | 'loop.py' | 'timer.js';
export const ALL_EXAMPLES: ExampleName[] = [...C_EXAMPLES, 'loop.py', 'timer.js'];

let built = false;

/** Compile examples/*.c into examples/bin once per test process, skipping up-to-date binaries. */
export function buildExamples(): void {
  if (built) return;
  fs.mkdirSync(EXAMPLE_BIN, { recursive: true });
  const common = fs.statSync(path.join(EXAMPLES, 'common.h')).mtimeMs;
  for (const name of [...C_EXAMPLES, ...EVENT_C_EXAMPLES, ...PROCESS_C_EXAMPLES, ...SOCKET_C_EXAMPLES]) {
    const src = path.join(EXAMPLES, `${name}.c`);
    const bin = path.join(EXAMPLE_BIN, name);
    const newest = Math.max(common, fs.statSync(src).mtimeMs);
    if (fs.existsSync(bin) && fs.statSync(bin).mtimeMs >= newest) continue;
    const tmp = `${bin}.tmp${process.pid}`;
    try {
      execFileSync('gcc', ['-O2', '-pthread', '-Wall', '-Wextra', '-Werror', '-o', tmp, src], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (e) {
      const err = e as { stderr?: Buffer };
      throw new Error(`building ${name} failed:\n${err.stderr?.toString() ?? String(e)}`);
    }
    fs.renameSync(tmp, bin);
  }
  built = true;
}

/** The built binary of a socket example. */
export function socketExample(name: SocketExample): string {
  buildExamples();
  return path.join(EXAMPLE_BIN, name);
}

function which(cmd: string): string {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  throw new Error(`${cmd} not found in PATH`);
}

export function python3(): string {
  return which('python3');
}

/** The argv that runs an example (absolute paths throughout). */
export function exampleProgram(name: ExampleName, args: string[] = []): string[] {
  if (name === 'loop.py') return [python3(), path.join(EXAMPLES, 'loop.py'), ...args];
  if (name === 'timer.js') return [NODE, path.join(EXAMPLES, 'timer.js'), ...args];
  buildExamples();
  return [path.join(EXAMPLE_BIN, name), ...args];
}

/** Deterministic contents for the input file of the `files` example. */
export function inputBytes(size = 20_000): Buffer {
  const b = Buffer.alloc(size);
  let x = 0x2545f491;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** The pattern the `mmap` example writes into both of its files at start. */
export function mmapPattern(pages = 256): Buffer {
  const b = Buffer.alloc(pages * 4096);
  for (let p = 0; p < pages; p++) for (let i = 0; i < 4096; i++) b[p * 4096 + i] = (p * 7 + i * 13 + 1) & 0xff;
  return b;
}
