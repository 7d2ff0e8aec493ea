// What an event descriptor (timerfd, signalfd, inotify, pidfd, eventfd,
// epoll) holds, and clocks, in words for `ckrun inspect`.
import { asArray, asBigInt, asMap, asNumber, asString, type CborMap } from './image.js';
import { hex } from './output.js';

/** A duration in nanoseconds, for people. */
function nsText(ns: bigint): string {
  if (ns % 1_000_000_000n === 0n) return `${ns / 1_000_000_000n} s`;
  if (ns >= 1_000_000n) return `${Number(ns) / 1e6} ms`;
  return `${ns} ns`;
}

function signalList(mask: bigint): string {
  const out: string[] = [];
  for (let i = 0n; i < 64n; i++) if ((mask >> i) & 1n) out.push(String(i + 1n));
  return out.length ? out.join(',') : 'none';
}

const CLOCKS: Record<number, string> = {
  0: 'REALTIME', 1: 'MONOTONIC', 2: 'PROCESS_CPUTIME', 3: 'THREAD_CPUTIME', 7: 'BOOTTIME', 8: 'REALTIME_ALARM', 9: 'BOOTTIME_ALARM',
};

export function clockName(id: number): string {
  return CLOCKS[id] ?? `clock ${id}`;
}

export function eventState(m: CborMap): string | undefined {
  const t = m['timerfd'];
  if (t !== undefined) {
    const tm = asMap(t);
    const value = asBigInt(tm['value_ns']) ?? 0n, interval = asBigInt(tm['interval_ns']) ?? 0n, ticks = asBigInt(tm['ticks']) ?? 0n;
    const when = tm['deadline_ns'] !== undefined ? `at ${new Date(Number((asBigInt(tm['deadline_ns']) ?? 0n) / 1_000_000n)).toISOString()}` : value ? `in ${nsText(value)}` : 'disarmed';
    return `${clockName(asNumber(tm['clock']) ?? -1)}, fires ${when}` + (interval ? `, then every ${nsText(interval)}` : '') + (ticks ? `, ${ticks} expirations unread` : '');
  }
  if (m['signalfd'] !== undefined) return `signals ${signalList(asBigInt(asMap(m['signalfd'])['mask']) ?? 0n)}`;
  if (m['inotify'] !== undefined) {
    const i = asMap(m['inotify']);
    const ws = asArray(i['watches']).map((w) => {
      const a = asArray(w);
      const on = a.length === 5 ? `deleted file (inode ${asNumber(a[4])})` : asString(a[2]);
      return `${asNumber(a[0])}:${on} mask ${hex(asBigInt(a[1]) ?? 0n)}`;
    });
    const queued = asNumber(i['queued']) ?? 0;
    return `watches ${ws.length ? ws.join(', ') : 'none'}` + (queued ? ` (${queued} bytes of unread events, not restored)` : '');
  }
  if (m['pidfd'] !== undefined) {
    const p = asMap(m['pidfd']);
    if (asString(p['relation']) === 'dead') return 'a process that had exited';
    return `process ${asNumber(p['pid'])} (${asString(p['relation']) ?? '?'})`;
  }
  if (m['eventfd'] !== undefined) {
    const e = asMap(m['eventfd']);
    return `count ${asBigInt(e['count']) ?? 0n}` + (e['semaphore'] === true ? ', semaphore' : '');
  }
  if (m['epoll'] !== undefined) {
    const l = asArray(m['epoll']).map((x) => {
      const a = asArray(x);
      // a fourth element: the descriptor holding the file added under fd, which fd no longer refers to
      const held = a.length > 3 ? ` (the file of fd ${asNumber(a[3])})` : '';
      return `fd ${asNumber(a[0])}${held} events ${hex(asBigInt(a[1]) ?? 0n)}`;
    });
    return `interest ${l.length ? l.join(', ') : 'none'}`;
  }
  return undefined;
}
