// What a session's program gets: its environment, its resolved path, and the
// identities of ckrun's stdio.
import { accessSync, closeSync, constants, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';

/** `<dev>:<ino>` of each descriptor (decimal; `0:0` for a closed one). */
export function stdioIdentity(fds: readonly number[] = [0, 1, 2]): string {
  return fds
    .slice(0, 3)
    .map((fd) => {
      try {
        const st = fstatSync(fd, { bigint: true });
        return `${st.dev}:${st.ino}`;
      } catch {
        return '0:0';
      }
    })
    .join(',');
}

export interface SessionEnvAdditions {
  /** Socket name without the leading NUL. */
  sock: string;
  /** Value of CKRUN_STDIO. */
  stdio: string;
  /** The shim's internal signal. */
  signal: number;
  /** Shim to prepend to LD_PRELOAD, or null for none. */
  preload: string | null;
  /** Shim to remove from an inherited LD_PRELOAD (the restore host links it itself). */
  stripPreload?: string | null;
  /** `--checkpoint-on` signals the shim holds back from the program (preload/holdsig.c). */
  hold?: readonly number[];
}

function splitPreload(v: string | undefined): string[] {
  return (v ?? '').split(/[: ]+/).filter((s) => s !== '');
}

/** The program's environment as "K=V" strings: base plus the session's additions. */
export function sessionEnv(base: NodeJS.ProcessEnv, add: SessionEnvAdditions): string[] {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) if (v !== undefined && !k.includes('=')) env[k] = v;
  let preload = splitPreload(env['LD_PRELOAD']);
  if (add.stripPreload) preload = preload.filter((p) => p !== add.stripPreload);
  if (add.preload !== null) preload = [add.preload, ...preload.filter((p) => p !== add.preload)];
  if (preload.length > 0) env['LD_PRELOAD'] = preload.join(':');
  else delete env['LD_PRELOAD'];
  env['CKRUN_SOCK'] = add.sock;
  env['CKRUN_STDIO'] = add.stdio;
  // ckrun's root directory: the shim refuses to checkpoint a process that chroot'ed elsewhere
  const root = statSync('/', { bigint: true });
  env['CKRUN_ROOT'] = `${root.dev}:${root.ino}`;
  env['CKRUN_SIGNAL'] = String(add.signal);
  if (add.hold && add.hold.length > 0) env['CKRUN_HOLD_SIGNALS'] = add.hold.join(',');
  else delete env['CKRUN_HOLD_SIGNALS'];
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}

export class ProgramNotFoundError extends Error {
  readonly code = 'ENOENT';
  constructor(readonly program: string) {
    super(`${program}: command not found`);
    this.name = 'ProgramNotFoundError';
  }
}

function isExecutableFile(p: string): boolean {
  try {
    if (!statSync(p).isFile()) return false;
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The path to execve for PROGRAM: as given (relative to cwd) when it holds a
 * slash, else the first executable match on PATH, like a shell.
 */
export function resolveProgram(program: string, path: string | undefined, cwd: string): string {
  if (program.includes('/')) return isAbsolute(program) ? program : resolve(cwd, program);
  for (const dir of (path ?? '/usr/local/bin:/usr/bin:/bin').split(delimiter)) {
    const candidate = resolve(cwd, join(dir === '' ? '.' : dir, program));
    if (isExecutableFile(candidate)) return candidate;
  }
  throw new ProgramNotFoundError(program);
}

/** Up to n bytes of file from offset pos (fewer at its end). */
function readBytes(fd: number, pos: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  const got = readSync(fd, b, 0, n, pos);
  return b.subarray(0, got);
}

const PT_INTERP = 3;
/** The kernel follows at most this many #! interpreters (BINPRM_MAX_RECURSION). */
const MAX_SCRIPT_DEPTH = 4;

/**
 * What kind of executable file is: an ELF program with or without a
 * program interpreter (PT_INTERP; without one it is statically linked,
 * static-pie included, and ld.so never loads LD_PRELOAD into it), a script
 * and its interpreter (as the kernel reads the #! line: up to 256 bytes,
 * the interpreter ends at a blank), or something else.
 */
function executableKind(fd: number): { elf: { bits: 32 | 64; dynamic: boolean } } | { interp: string } | null {
  const head = readBytes(fd, 0, 256);
  if (head.length >= 2 && head[0] === 0x23 && head[1] === 0x21) {
    const line = head.subarray(2).toString('latin1').split('\n')[0]!.replace(/^[ \t]+/, '');
    const interp = line.split(/[ \t]/)[0] ?? '';
    return interp ? { interp } : null;
  }
  if (head.length < 64 || head.readUInt32BE(0) !== 0x7f454c46) return null;
  const bits = head[4] === 2 ? 64 : head[4] === 1 ? 32 : 0;
  const little = head[5] === 1;
  if (!bits || !little) return null;
  const u16 = (b: Buffer, o: number) => b.readUInt16LE(o);
  const phoff = bits === 64 ? Number(head.readBigUInt64LE(32)) : head.readUInt32LE(28);
  const phentsize = u16(head, bits === 64 ? 54 : 42);
  const phnum = u16(head, bits === 64 ? 56 : 44);
  if (!phentsize || phnum > 4096) return null;
  const ph = readBytes(fd, phoff, phentsize * phnum);
  let dynamic = false;
  for (let i = 0; i + 4 <= ph.length && i < phentsize * phnum; i += phentsize) if (ph.readUInt32LE(i) === PT_INTERP) dynamic = true;
  return { elf: { bits, dynamic } };
}

/**
 * Why the shim could never be in the program at file (following #!
 * interpreters), or null when it can (or when ckrun cannot tell: the
 * execve decides). `ckrun -- PROGRAM` refuses such a program before it
 * runs, with the reason a checkpoint would give.
 */
export function whyNotUnderShim(file: string, cwd: string, depth = 0): string | null {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return null; // not readable: execve tells
  }
  let kind: ReturnType<typeof executableKind>;
  try {
    kind = executableKind(fd);
  } catch {
    kind = null;
  } finally {
    closeSync(fd);
  }
  if (!kind) return null;
  if ('interp' in kind) {
    if (depth >= MAX_SCRIPT_DEPTH) return null;
    const interp = resolve(cwd, kind.interp);
    const why = whyNotUnderShim(interp, cwd, depth + 1);
    return why && (why.startsWith('its interpreter ') ? why : `its interpreter ${why}`);
  }
  if (kind.elf.bits === 32) return `${file} is a 32-bit program, into which the x86-64 shim cannot be loaded`;
  if (!kind.elf.dynamic) return `${file} is statically linked`;
  return null;
}
