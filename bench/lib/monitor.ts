// Watches for other processes using the CPUs while the benchmark runs: on
// 2 cores, anyone else's work shows up in every timing. Every two seconds it
// reads /proc/*/stat and charges the CPU time of processes that are not the
// benchmark's descendants (nor kernel threads) to the current phase.
import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_S = 100; // USER_HZ on Linux x86-64

interface ProcTimes {
  ppid: number;
  comm: string;
  ticks: number;
  kernelThread: boolean;
}

function readAll(): Map<number, ProcTimes> {
  const out = new Map<number, ProcTimes>();
  for (const name of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      const f = stat.slice(close + 2).split(' ');
      // f[0] state, f[1] ppid, f[6] flags, f[11] utime, f[12] stime
      const flags = Number(f[6]);
      out.set(Number(name), {
        ppid: Number(f[1]),
        comm,
        ticks: Number(f[11]) + Number(f[12]),
        kernelThread: (flags & 0x00200000) !== 0, // PF_KTHREAD
      });
    } catch {
      /* gone */
    }
  }
  return out;
}

function ours(procs: Map<number, ProcTimes>, self: number): Set<number> {
  const kids = new Map<number, number[]>();
  for (const [pid, p] of procs) kids.set(p.ppid, [...(kids.get(p.ppid) ?? []), pid]);
  const set = new Set<number>([self]);
  const queue = [self];
  while (queue.length) for (const k of kids.get(queue.shift()!) ?? []) if (!set.has(k)) (set.add(k), queue.push(k));
  return set;
}

export interface ForeignUse {
  phase: string;
  /** CPU seconds other processes used during the phase, by command name. */
  byCommand: Record<string, number>;
  totalS: number;
}

export class Monitor {
  private prev = readAll();
  private timer: NodeJS.Timeout | undefined;
  private phase = 'start';
  readonly phases: ForeignUse[] = [];

  start(intervalMs = 2000): void {
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  /** Subsequent foreign CPU time is charged to `name`. */
  setPhase(name: string): void {
    this.sample();
    this.phase = name;
  }

  stop(): ForeignUse[] {
    this.sample();
    if (this.timer) clearInterval(this.timer);
    return this.phases;
  }

  private sample(): void {
    const now = readAll();
    const mine = ours(now, process.pid);
    let entry = this.phases.find((p) => p.phase === this.phase);
    for (const [pid, p] of now) {
      if (mine.has(pid) || p.kernelThread) continue;
      const before = this.prev.get(pid)?.ticks ?? 0;
      // A process born since the last sample: all of its time is new (if it was ours, it is still a descendant).
      const delta = (p.ticks - before) / TICKS_PER_S;
      if (delta <= 0) continue;
      if (!entry) {
        entry = { phase: this.phase, byCommand: {}, totalS: 0 };
        this.phases.push(entry);
      }
      entry.byCommand[p.comm] = (entry.byCommand[p.comm] ?? 0) + delta;
      entry.totalS += delta;
    }
    this.prev = now;
  }
}
