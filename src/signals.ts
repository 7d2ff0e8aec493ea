// Signal names <-> numbers, including real-time signals (which Node's
// os.constants.signals does not list).
import { constants } from 'node:os';

/** glibc's SIGRTMIN (32 and 33 belong to glibc itself) and SIGRTMAX on x86-64 Linux. */
export const SIGRTMIN = 34;
export const SIGRTMAX = 64;

const byNumber = new Map<number, string>();
for (const [name, num] of Object.entries(constants.signals)) {
  // keep the first (canonical) name: SIGIOT/SIGABRT, SIGPOLL/SIGIO
  if (!byNumber.has(num) && name !== 'SIGIOT' && name !== 'SIGPOLL' && name !== 'SIGUNUSED') byNumber.set(num, name);
}

export function signalName(n: number): string {
  const known = byNumber.get(n);
  if (known) return known;
  if (n === SIGRTMIN) return 'SIGRTMIN';
  if (n === SIGRTMAX) return 'SIGRTMAX';
  if (n > SIGRTMIN && n < SIGRTMAX) return n - SIGRTMIN <= SIGRTMAX - n ? `SIGRTMIN+${n - SIGRTMIN}` : `SIGRTMAX-${SIGRTMAX - n}`;
  return `signal ${n}`;
}

/**
 * Parses a signal given by name (`USR2`, `SIGUSR2`, `usr2`, `RTMIN+3`,
 * `SIGRTMAX-1`) or number (`12`). Throws a RangeError naming the problem.
 */
export function parseSignal(text: string): number {
  const t = text.trim().toUpperCase();
  if (/^[0-9]+$/.test(t)) {
    const n = Number(t);
    if (n >= 1 && n <= SIGRTMAX) return n;
    throw new RangeError(`signal number ${text} is out of range (1 to ${SIGRTMAX})`);
  }
  const name = t.startsWith('SIG') ? t : `SIG${t}`;
  const rt = /^SIGRT(MIN|MAX)(?:([+-])([0-9]+))?$/.exec(name);
  if (rt) {
    const base = rt[1] === 'MIN' ? SIGRTMIN : SIGRTMAX;
    const off = rt[3] === undefined ? 0 : Number(rt[3]) * (rt[2] === '-' ? -1 : 1);
    const n = base + off;
    if (n < SIGRTMIN || n > SIGRTMAX) throw new RangeError(`${text} is outside SIGRTMIN..SIGRTMAX (${SIGRTMIN}..${SIGRTMAX})`);
    return n;
  }
  const n = (constants.signals as Record<string, number | undefined>)[name];
  if (n === undefined) throw new RangeError(`unknown signal name '${text}' (try USR1, USR2, HUP, RTMIN+3 or a number)`);
  return n;
}

/** Signals that cannot serve as ckrun's trigger, with the reason. */
export function triggerSignalProblem(n: number): string | undefined {
  switch (n) {
    case constants.signals.SIGKILL:
    case constants.signals.SIGSTOP:
      return 'it cannot be caught';
    case constants.signals.SIGCHLD:
      return 'ckrun gets it whenever a child exits';
    case constants.signals.SIGSEGV:
    case constants.signals.SIGBUS:
    case constants.signals.SIGFPE:
    case constants.signals.SIGILL:
    case constants.signals.SIGTRAP:
      return 'it reports a fault';
    case 32:
    case 33:
      return 'glibc reserves it';
    default:
      return undefined;
  }
}

/** The shim's internal signal must be a real-time signal. */
export function internalSignalProblem(n: number): string | undefined {
  if (n < SIGRTMIN || n > SIGRTMAX) return `it must be a real-time signal (${SIGRTMIN} to ${SIGRTMAX})`;
  return undefined;
}

/** Signal mask (bit n-1 = signal n) to names. */
export function maskToNames(mask: bigint): string[] {
  const out: string[] = [];
  for (let n = 1; n <= 64; n++) if ((mask >> BigInt(n - 1)) & 1n) out.push(signalName(n));
  return out;
}

/** A signal mask for people: names, or "all but ..." when most are set. */
export function formatMask(mask: bigint): string {
  const set = maskToNames(mask);
  if (set.length === 0) return '-';
  if (set.length <= 16) return set.join(' ');
  const unset: string[] = [];
  for (let n = 1; n <= 64; n++) if (n !== 9 && n !== 19 && !((mask >> BigInt(n - 1)) & 1n)) unset.push(signalName(n));
  if (unset.length === 0) return 'all';
  if (unset.length <= 8) return `all but ${unset.join(' ')}`;
  return `${set.length} signals (0x${mask.toString(16)})`;
}
