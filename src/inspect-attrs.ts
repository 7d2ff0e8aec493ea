// `ckrun inspect`: process and thread attributes a restart puts back
// (docs/image-format.md: "attrs", "seccomp", "aio", a thread's "attrs" and
// "queued", the signals' "queued"). Images of older ckruns have none of
// these keys: the section is left out.
import { type CborMap, type CborValue, type Image, asArray, asBigInt, asMap, asNumber } from './image.js';
import { signalName } from './signals.js';

const POLICIES = ['SCHED_OTHER', 'SCHED_FIFO', 'SCHED_RR', 'SCHED_BATCH', 'SCHED_ISO', 'SCHED_IDLE', 'SCHED_DEADLINE', 'SCHED_EXT'];
const IO_CLASSES = ['none', 'real-time', 'best-effort', 'idle'];
const MEMBARRIER: [number, string][] = [
  [4, 'GLOBAL_EXPEDITED'],
  [16, 'PRIVATE_EXPEDITED'],
  [64, 'PRIVATE_EXPEDITED_SYNC_CORE'],
  [256, 'PRIVATE_EXPEDITED_RSEQ'],
];
/** si_code values a program's signals carry (siginfo.h) */
const SI_CODES: Record<number, string> = { 0: 'kill', [-1]: 'sigqueue', [-2]: 'timer', [-3]: 'mq_notify', [-4]: 'AIO', [-5]: 'SIGIO', [-6]: 'tkill', 128: 'kernel' };

export interface QueuedSignal {
  signal: number;
  code: number;
  pid: number;
  uid: number;
  value: bigint;
}

export function queuedSignals(v: CborValue): QueuedSignal[] {
  return asArray(v).map((x) => {
    const a = asArray(x);
    return { signal: asNumber(a[0]) ?? 0, code: asNumber(a[1]) ?? 0, pid: asNumber(a[2]) ?? 0, uid: asNumber(a[3]) ?? 0, value: asBigInt(a[4]) ?? 0n };
  });
}

function formatQueued(q: QueuedSignal): string {
  const how = SI_CODES[q.code] ?? `code ${q.code}`;
  return `${signalName(q.signal)}${q.code === -1 || q.code === -2 ? ` value ${q.value}` : ''} (${how}${q.code <= 0 ? ` from ${q.pid}` : ''})`;
}

function cpuList(words: CborValue): string {
  const ws = asArray(words).map((w) => asBigInt(w) ?? 0n);
  const cpus: number[] = [];
  ws.forEach((w, i) => {
    for (let b = 0; b < 64; b++) if ((w >> BigInt(b)) & 1n) cpus.push(i * 64 + b);
  });
  const parts: string[] = [];
  for (let i = 0; i < cpus.length; ) {
    let j = i;
    while (j + 1 < cpus.length && cpus[j + 1] === cpus[j]! + 1) j++;
    parts.push(j > i ? `${cpus[i]}-${cpus[j]}` : `${cpus[i]}`);
    i = j + 1;
  }
  return parts.join(',') || 'none';
}

function scheduling(a: CborMap): string {
  const policy = asNumber(a['policy']) ?? 0;
  const name = POLICIES[policy] ?? `policy ${policy}`;
  const rt = policy === 1 || policy === 2;
  const parts = [rt ? `${name} priority ${asNumber(a['priority']) ?? 0}` : policy === 6 ? name : `${name} nice ${asNumber(a['nice']) ?? 0}`];
  if (((asNumber(a['sched_flags']) ?? 0) & 1) !== 0) parts.push('reset on fork');
  if (a['util_min'] !== undefined) parts.push(`util ${asNumber(a['util_min'])}-${asNumber(a['util_max'])}`);
  return parts.join(', ');
}

function ioPriority(v: number): string {
  const cls = (v >> 13) & 7;
  const name = IO_CLASSES[cls] ?? `class ${cls}`;
  return cls === 1 || cls === 2 ? `${name} ${v & 7}` : name;
}

function threadOther(a: CborMap, seccomp: number | undefined): string {
  const parts: string[] = [];
  const mce = asNumber(a['mce_kill']);
  if (mce === 0 || mce === 1) parts.push(`MCE kill ${mce === 1 ? 'early' : 'late'}`);
  if (asNumber(a['tsc']) === 2) parts.push('TSC reads fault');
  if (a['cpuid'] === false) parts.push('cpuid faults');
  const gs = asBigInt(a['gs_base']) ?? 0n;
  if (gs) parts.push(`%gs base 0x${gs.toString(16)}`);
  const pd = asNumber(a['pdeathsig']) ?? 0;
  if (pd) parts.push(`pdeathsig ${signalName(pd)}`);
  if (seccomp !== undefined) parts.push(`seccomp filter ${seccomp}`);
  return parts.join('; ') || '-';
}

function table(headers: string[], rows: string[][]): string {
  const w = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => '  ' + cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(w[i]!))).join('  ') + '\n';
  return line(headers) + rows.map(line).join('');
}

function processLine(p: CborMap): string {
  const parts = [`oom_score_adj ${asNumber(p['oom_score_adj']) ?? 0}`];
  const cf = asNumber(p['coredump_filter']);
  if (cf !== undefined && cf !== 0x33) parts.push(`coredump_filter 0x${cf.toString(16)}`);
  if (asNumber(p['thp_disable'])) parts.push('THP disabled');
  if (p['child_subreaper'] === true) parts.push('child subreaper');
  const mb = asNumber(p['membarrier']) ?? 0;
  if (mb) parts.push(`membarrier ${MEMBARRIER.filter(([b]) => mb & b).map(([, n]) => n).join(', ')}`);
  const mdwe = asNumber(p['mdwe']) ?? 0;
  if (mdwe) parts.push(`MDWE ${[mdwe & 1 ? 'refuse-exec-gain' : '', mdwe & 2 ? 'no-inherit' : ''].filter(Boolean).join(', ')}`);
  if (asNumber(p['memory_merge'])) parts.push('KSM merge-any');
  return parts.join('; ');
}

function seccompLine(s: CborMap): string {
  const filters = asArray(s['filters']).map(asMap);
  const common = asNumber(s['common']);
  let shared = 0;
  for (let i = common; i !== undefined && i >= 0 && shared < filters.length; i = asNumber(filters[i]?.['prev']) ?? -1) shared++;
  return `seccomp filters: ${filters.length} (${shared} on every thread)`;
}

/** The "Attributes" section of an image's report, or '' for an image without them. */
export function formatAttributes(img: Image): string {
  const m = img.meta;
  if (m['attrs'] === undefined) return '';
  const out = ['\nAttributes\n', `  process: ${processLine(asMap(m['attrs']))}\n`];
  if (m['seccomp'] !== undefined) out.push(`  ${seccompLine(asMap(m['seccomp']))}\n`);
  for (const x of asArray(m['aio'])) {
    const a = asMap(x);
    const n = asArray(a['events']).length;
    out.push(`  AIO context 0x${(asBigInt(a['ctx']) ?? 0n).toString(16)}: ${n} completion${n === 1 ? '' : 's'} not yet reaped (ring of ${asNumber(a['nr']) ?? '?'})\n`);
  }
  const rows: string[][] = [];
  const queued: string[] = queuedSignals(asMap(m['signals'])['queued']).map(formatQueued);
  for (const t of asArray(m['threads'])) {
    const tm = asMap(t);
    const a = asMap(tm['attrs']);
    if (tm['attrs'] === undefined) continue;
    const slack = asNumber(a['timerslack']) ?? 0;
    rows.push([
      String(asNumber(tm['tid']) ?? '?'),
      String(tm['comm'] ?? ''),
      scheduling(a),
      cpuList(a['cpus']),
      ioPriority(asNumber(a['ioprio']) ?? 0),
      `${slack} ns`,
      threadOther(a, asNumber(a['seccomp'])),
    ]);
    for (const q of queuedSignals(tm['queued'])) queued.push(`${formatQueued(q)} to thread ${asNumber(tm['tid']) ?? '?'}`);
  }
  if (rows.length) out.push(table(['TID', 'NAME', 'SCHEDULING', 'CPUS', 'I/O', 'SLACK', 'OTHER'], rows));
  out.push(`  queued: ${queued.length ? queued.join(', ') : 'none'}\n`);
  return out.join('');
}
