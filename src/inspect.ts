// `ckrun inspect`: what an image holds, as a table or as JSON.
import { basename } from 'node:path';
import {
  asNumber,
  asString,
  asArray,
  asMap,
  credentials,
  threadCredentials,
  referredImages,
  fileInfo,
  files,
  regions,
  signalsOf,
  threads,
  type CborValue,
  type Image,
  type RegionInfo,
} from './image.js';
import { capabilityNames } from './capabilities.js';
import { formatAttributes } from './inspect-attrs.js';
import { clockName, eventState } from './inspect-events.js';
import type { Inspection } from './inspect-read.js';
import { familyOf, formatFamily } from './inspect-tree.js';
import { formatInet, inetSockets, setInetSession } from './inspect-inet.js';
import { formatUnixSockets } from './inspect-unix.js';
import { displayPath, formatBytes, formatDuration, hex } from './output.js';
import { formatMask, maskToNames, signalName } from './signals.js';
import { describeUser } from './trust.js';
import type { FilesRecord } from './files.js';

export { InspectError, inspectImage, type Inspection } from './inspect-read.js';

function idsText(kind: 'uid' | 'gid', ids: readonly number[]): string {
  if (ids.every((x) => x === ids[0])) return kind === 'uid' ? describeUser(ids[0]!) : `gid ${ids[0]}`;
  return `${kind} ${ids[0]} (real), ${ids[1]} (effective), ${ids[2]} (saved), ${ids[3]} (filesystem)`;
}

const SECUREBITS = ['noroot', 'noroot locked', 'no setuid fixup', 'no setuid fixup locked', 'keep caps', 'keep caps locked', 'no ambient raise', 'no ambient raise locked'];

/** The image's credentials as inspect's "Runs as", "Capabilities" and "Security" lines. */
function credentialLines(m: Record<string, CborValue>): [string, string][] {
  const c = credentials(m);
  if (!c) return [['Runs as', 'not recorded (an older ckrun took this image; restart refuses it)']];
  const caps = c.caps;
  const bits = SECUREBITS.filter((_, i) => (c.securebits >> i) & 1);
  return [
    ['Runs as', `${idsText('uid', c.uid)}, ${idsText('gid', c.gid)}, groups ${c.groups.length ? c.groups.join(', ') : 'none'}`],
    [
      'Capabilities',
      `effective ${capabilityNames(caps.effective)}; permitted ${capabilityNames(caps.permitted)}; inheritable ${capabilityNames(caps.inheritable)}; ` +
        `ambient ${capabilityNames(caps.ambient)}; bounding set ${capabilityNames(caps.bounding)}`,
    ],
    [
      'Security',
      `securebits ${c.securebits ? `${hex(c.securebits)} (${bits.join(', ')})` : '0'}; no_new_privs ${c.noNewPrivs ? 'set' : 'not set'}; ` +
        `dumpable ${c.dumpable}`,
    ],
    // threads whose credentials were not the process's (set with raw system calls)
    ...threadCredentials(m).map(({ tid, creds: t }): [string, string] => [
      `Thread ${tid} runs as`,
      t
        ? `${idsText('uid', t.uid)}, ${idsText('gid', t.gid)}, groups ${t.groups.length ? t.groups.join(', ') : 'none'}; ` +
          `effective ${capabilityNames(t.caps.effective)}; permitted ${capabilityNames(t.caps.permitted)}; ` +
          `securebits ${t.securebits ? hex(t.securebits) : '0'}; no_new_privs ${t.noNewPrivs ? 'set' : 'not set'}`
        : 'incomplete (restart refuses the image)',
    ]),
  ];
}

// ---------------------------------------------------------------------------
// JSON

/** A decoded CBOR value made JSON-safe: big integers as numbers when safe, else strings; bytes as hex. */
export function jsonSafe(v: unknown): unknown {
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex');
  if (Array.isArray(v)) return v.map(jsonSafe);
  if (v instanceof Map) return Object.fromEntries([...v.entries()].map(([k, x]) => [String(k), jsonSafe(x)]));
  if (typeof v === 'object' && v !== null) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = jsonSafe(x);
    return o;
  }
  return v;
}

function imageJson(img: Image): unknown {
  return {
    path: img.path,
    size: img.size,
    ...(img.compressed ? { compressed: img.compressed } : {}),
    dataVerified: img.dataVerified,
    header: img.header,
    meta: jsonSafe(img.meta),
  };
}

/**
 * `{path, size, header, meta}` for one image; `{generation, manifest,
 * images}` for a generation, with `family` (tree, shared files, shared
 * memory) when it holds several processes.
 */
export function inspectionJson(i: Inspection): unknown {
  if (!i.generation) return imageJson(i.images[0]!);
  const family = familyOf(i);
  return {
    generation: i.generation.path,
    manifest: jsonSafe(i.generation.manifest),
    ...(family ? { family } : {}),
    images: i.images.map(imageJson),
  };
}

// ---------------------------------------------------------------------------
// Table

function table(headers: string[], rows: string[][], indent = '  '): string {
  const widths = headers.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: string[]): string =>
    indent +
    cells
      .map((x, c) => (c === cells.length - 1 ? x : x.padEnd(widths[c]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

export function protString(prot: number, shared: boolean): string {
  return (prot & 1 ? 'r' : '-') + (prot & 2 ? 'w' : '-') + (prot & 4 ? 'x' : '-') + (shared ? 's' : 'p');
}

function backing(r: RegionInfo): string {
  const huge = r.hugePage ? ` (hugetlb, pages of ${formatBytes(r.hugePage)})` : '';
  if (r.file) return `${r.file.path} @${hex(r.file.offset)}${huge}`;
  if (r.name) return r.name + huge;
  return (r.kind === 'anon' ? '(anonymous)' : `(${r.kind})`) + huge;
}

const SA_FLAGS: [number, string][] = [
  [0x1, 'SA_NOCLDSTOP'],
  [0x2, 'SA_NOCLDWAIT'],
  [0x4, 'SA_SIGINFO'],
  [0x04000000, 'SA_RESTORER'],
  [0x08000000, 'SA_ONSTACK'],
  [0x10000000, 'SA_RESTART'],
  [0x40000000, 'SA_NODEFER'],
  [0x80000000, 'SA_RESETHAND'],
];

function saFlags(f: bigint): string {
  const names = SA_FLAGS.filter(([bit]) => (f & BigInt(bit)) !== 0n && bit !== 0x04000000).map(([, n]) => n);
  return names.length ? names.join('|') : '0';
}

function openFlags(flags: number, cloexec: boolean): string {
  const acc = ['r', 'w', 'rw', '?'][flags & 3]!;
  const extra: string[] = [];
  if (flags & 0o2000) extra.push('append');
  if (flags & 0o4000) extra.push('nonblock');
  if (flags & 0o4010000) extra.push('sync');
  if (cloexec) extra.push('cloexec');
  return [acc, ...extra].join(',');
}

function usec(us: bigint): string {
  return formatDuration(us * 1000n);
}

const STDIO_NAMES = ['stdin', 'stdout', 'stderr'];

function metaText(meta: Record<string, CborValue>, key: string): string {
  return asString(meta[key]) ?? '?';
}

/** One image as a human-readable report. */
export function formatImage(img: Image): string {
  const m = img.meta;
  const out: string[] = [];
  const created = asNumber(m['created_ns']) ?? Number((m['created_ns'] as bigint | undefined) ?? 0n);
  const when = created ? new Date(created / 1e6).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC') : '?';
  const stats = (m['stats'] ?? {}) as Record<string, CborValue>;
  const h = img.header;
  const kv: [string, string][] = [
    ['Image', displayPath(img.path)],
    [
      'Format',
      `version ${h.version}, ${formatBytes(h.file_length)} (data ${formatBytes(h.data_length)}, metadata ${formatBytes(h.meta_length)}); ` +
        (img.compressed ? `compressed with ${img.compressed} to ${formatBytes(img.size)}; ` : '') +
        (img.dataVerified ? 'data checksums verified' : 'header and metadata checksums verified'),
    ],
    ['Taken', `${when} on ${metaText(m, 'hostname')} (Linux ${metaText(m, 'kernel')}, ${metaText(m, 'machine')})`],
    ['Program', metaText(m, 'exe')],
    ['Command', asArray(m['cmdline']).map((a) => asString(a) ?? '').join(' ')],
    [
      'PID',
      `${String(m['pid'])} (ppid ${String(m['ppid'] ?? '?')}, pgid ${String(m['pgid'] ?? '?')}, sid ${String(m['sid'] ?? '?')})`,
    ],
    ['Directory', `${metaText(m, 'cwd')} (umask ${(asNumber(m['umask']) ?? 0).toString(8).padStart(4, '0')})`],
    ...credentialLines(m),
    ['Signal', `the shim uses ${signalName(asNumber(m['signal']) ?? 0)} (${String(m['signal'])}); connection on descriptor ${String(m['ctl_fd'] ?? '?')}`],
  ];
  if (stats['pause_ns'] !== undefined) kv.push(['Pause', formatDuration(BigInt(stats['pause_ns'] as number | bigint))]);
  const refs = referredImages(img);
  const referred = regions(m).reduce((a, r) => a + r.runs.reduce((b, x) => b + (x.image !== undefined ? x.pages * 4096 : 0), 0), 0);
  const inc = asMap(m['incremental']);
  kv.push([
    'Incremental',
    refs.length
      ? `yes: ${formatBytes(referred)} of unchanged pages are in ${refs.map((r) => basename(r)).join(', ')} (hard links here)`
      : `no (full image${asString(inc['tracking']) ? `; change tracking: ${asString(inc['tracking'])}` : ''})`,
  ]);
  const w = Math.max(...kv.map(([k]) => k.length));
  for (const [k, v] of kv) out.push(`${k.padEnd(w)}  ${v}\n`);

  const ts = threads(m);
  out.push(`\nThreads (${ts.length})\n`);
  out.push(
    table(
      ['TID', 'RIP', 'RSP', 'NAME', 'BLOCKED'],
      ts.map((t) => [
        `${t.tid}${t.leader ? '*' : ''}`,
        t.rip !== undefined ? hex(t.rip, 16) : '?',
        t.rsp !== undefined ? hex(t.rsp, 16) : '?',
        t.comm,
        formatMask(t.sigmask),
      ]),
    ),
  );
  if (ts.some((t) => t.leader)) out.push('  (* wrote the image)\n');
  out.push(formatAttributes(img));

  const rs = regions(m);
  const mapped = rs.reduce((a, r) => a + (r.end - r.start), 0n);
  const stored = rs.reduce((a, r) => a + r.bytes, 0);
  out.push(`\nMemory (${rs.length} region${rs.length === 1 ? '' : 's'}, ${formatBytes(mapped)} mapped, ${formatBytes(stored)} stored)\n`);
  out.push(
    table(
      ['START', 'END', 'SIZE', 'PROT', 'KIND', 'STORED', 'BACKING'],
      rs.map((r) => [
        hex(r.start, 12),
        hex(r.end, 12),
        formatBytes(r.end - r.start),
        protString(r.prot, r.shared),
        r.kind,
        r.bytes ? formatBytes(r.bytes) : '-',
        backing(r),
      ]),
    ),
  );

  const entries = asArray(m['files']).map(asMap);
  const fs = entries.map(fileInfo);
  // what an event descriptor holds, in words
  const states = entries.map(eventState);
  out.push(`\nDescriptors (${fs.length})\n`);
  out.push(
    table(
      ['FD', 'KIND', 'FLAGS', 'OFFSET', 'WHAT'],
      fs.map((f, i) => [
        String(f.fd),
        f.kind,
        openFlags(f.flags, f.cloexec),
        f.kind === 'file' || f.kind === 'deleted' ? String(f.offset) : '-',
        (f.stdio !== undefined ? `session ${STDIO_NAMES[f.stdio] ?? f.stdio} (was ${f.path})` : f.path) +
          (f.sameAs !== undefined ? ` (same as ${f.sameAs})` : '') +
          (f.data ? ` (contents saved, ${formatBytes(f.data.length)})` : '') +
          (f.size !== undefined && f.kind === 'file' ? ` [${formatBytes(f.size)}]` : '') +
          (states[i] ? `: ${states[i]}` : ''),
      ]),
    ),
  );

  out.push(formatInet(img));

  const sg = signalsOf(m);
  out.push('\nSignals\n');
  if (sg.actions.length === 0) out.push('  every disposition is the default\n');
  else
    out.push(
      table(
        ['SIGNAL', 'ACTION', 'FLAGS', 'MASK'],
        sg.actions.map((a) => [
          signalName(a.signal),
          a.handler === 0n ? 'default' : a.handler === 1n ? 'ignore' : `handler ${hex(a.handler)}`,
          saFlags(a.flags),
          formatMask(a.mask),
        ]),
      ),
    );
  const pending: string[] = maskToNames(sg.pending).map((n) => `${n} (process)`);
  for (const t of ts) for (const n of maskToNames(t.pending)) pending.push(`${n} (thread ${t.tid})`);
  out.push(`  pending: ${pending.length ? pending.join(', ') : 'none'}\n`);
  const timerNames = ['ITIMER_REAL', 'ITIMER_VIRTUAL', 'ITIMER_PROF'];
  const timers = sg.itimers
    .map((t, i) =>
      t.value_us === 0n && t.interval_us === 0n
        ? undefined
        : `${timerNames[i] ?? i}: ${usec(t.value_us)} left` + (t.interval_us ? `, then every ${usec(t.interval_us)}` : ''),
    )
    .filter((x): x is string => x !== undefined);
  out.push(`  timers: ${timers.length ? timers.join('; ') : 'none'}\n`);
  const posix = sg.timers.map(
    (t) =>
      `${t.id} (${clockName(t.clock)}, ${t.notify === 'none' ? 'no signal' : `${signalName(t.signal)}${t.notify === 'thread_id' ? ` to thread ${t.tid}` : ''}`}): ` +
      (t.remaining_ns ? `${usec(t.remaining_ns / 1000n)} left` : 'disarmed') +
      (t.interval_ns ? `, then every ${usec(t.interval_ns / 1000n)}` : ''),
  );
  out.push(`  POSIX timers: ${posix.length ? posix.join('; ') : 'none'}\n`);

  out.push('\nSizes\n');
  out.push(
    `  file ${formatBytes(h.file_length)}${img.compressed ? ` (${formatBytes(img.size)} compressed with ${img.compressed})` : ''}: header 4 KiB, data ${formatBytes(h.data_length)} ` +
      `(${asNumber(stats['pages']) ?? '?'} page${asNumber(stats['pages']) === 1 ? '' : 's'}), metadata ${formatBytes(h.meta_length)}\n`,
  );
  return out.join('');
}

const FILES_POLICY_TEXT: Record<FilesRecord['policy'], string> = {
  snapshot: 'put back as they were at the checkpoint (--files=snapshot)',
  size: 'cut back to their checkpoint size at restart (--files=size)',
  none: 'left as they are at restart (--files=none)',
};

/** The generation's written files (src/files.ts): what a restart puts back, and what this generation stored of each. */
function formatFiles(f: FilesRecord): string {
  const out = [`Written files: ${FILES_POLICY_TEXT[f.policy]}\n`];
  if (f.saved.length > 0)
    out.push(
      table(
        ['PATH', 'SIZE', 'KEPT', 'STORED HERE', 'MODE', 'OWNER'],
        f.saved.map((x) => [
          x.path,
          formatBytes(x.size),
          x.how === 'content'
            ? 'content'
            : x.how === 'recreate'
              ? 'content, made again if removed (read only)'
              : 'checksums (log opened O_APPEND: cut back)',
          formatBytes(x.stored),
          (x.mode & 0o7777).toString(8).padStart(4, '0'),
          `${x.uid}:${x.gid}`,
        ]),
      ),
    );
  for (const s of f.stdio)
    out.push(
      `  stdio ${STDIO_NAMES[s.fd] ?? s.fd}: ${s.same_as !== undefined ? `the same open file as ${STDIO_NAMES[s.same_as] ?? s.same_as}, ` : ''}${s.path} at offset ${s.offset}` +
        ` (restart reopens it there; --stdio=inherit gives restart's own)\n`,
    );
  for (const d of f.dirs ?? [])
    out.push(
      `  snapshot directory ${d.path}: ${d.entries} entries, ${formatBytes(d.bytes)} in files, ${formatBytes(d.stored)} copied here (the rest linked); restart puts the tree back as it was\n`,
    );
  for (const m of f.made ?? []) out.push(`  made after the checkpoint: ${m.path} (restart removes it while it is that entry)\n`);
  for (const m of f.moved ?? [])
    out.push(
      m.link
        ? `  named after the checkpoint: ${m.to}, a link of ${m.from} (restart removes that name while another holds it)\n`
        : `  moved after the checkpoint: ${m.from} to ${m.to} (restart moves it back while ${m.from} is free)\n`,
    );
  return out.join('');
}

/**
 * Whether the generation is portable (`--portable`: the files the program
 * maps are in it), and what a restart still needs of the machine: the
 * regular files the program has open that the generation does not keep,
 * and the addresses it listens on.
 */
function formatPortable(portable: boolean, images: Image[], kept: FilesRecord | undefined): string {
  const out = [
    portable
      ? 'Portable: yes: the files the program maps (executable, libraries, mapped data) are in the generation; a restart maps its copies where they are missing or differ\n'
      : 'Portable: no: a restart needs the files the program maps, with the same content (take checkpoints with --portable to carry them)\n',
  ];
  const keptPaths = new Set((kept?.saved ?? []).map((f) => f.path));
  const open = new Set<string>();
  for (const img of images) for (const f of files(img.meta)) if (f.kind === 'file' && f.path.startsWith('/') && !keptPaths.has(f.path)) open.add(f.path);
  const listening = new Set<string>();
  for (const img of images)
    for (const s of inetSockets(img.meta))
      if (s.local && (s.state === 'LISTEN' || (s.proto === 'UDP' && s.peer === undefined))) listening.add(`${s.proto} ${s.local.address}:${s.local.port}`);
  if (open.size) out.push(`  needs these files it has open: ${[...open].sort().join(', ')}\n`);
  if (listening.size) out.push(`  listens on (the addresses must exist there): ${[...listening].sort().join(', ')}\n`);
  return out.join('');
}

/** The whole inspection as text. */
export function formatInspection(i: Inspection): string {
  const parts: string[] = [];
  if (i.generation) {
    const g = i.generation.manifest;
    const when = g.created_ns ? new Date(Number(g.created_ns / 1_000_000n)).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC') : '?';
    parts.push(
      `Generation ${g.generation} in ${displayPath(i.generation.path)}, completed ${when}: ` +
        `${g.processes.length} process${g.processes.length === 1 ? '' : 'es'}, root PID ${g.root}, ` +
        `started as \`${g.argv.join(' ')}\` in ${g.cwd}\n\n`,
    );
    const family = familyOf(i);
    if (family) parts.push(formatFamily(family) + '\n' + '-'.repeat(72) + '\n\n');
    if (g.files) parts.push(formatFiles(g.files) + '\n');
    if (g.contents?.length) {
      const bytes = g.contents.reduce((n, c) => n + Number(c.size), 0);
      parts.push(
        `Mapped files by content: ${g.contents.length} file${g.contents.length === 1 ? '' : 's'} (${formatBytes(bytes)}) with their SHA-256: ` +
          `a restart also takes a copy of the same bytes (another inode or time)\n`,
      );
    }
    parts.push(formatPortable(g.portable === true, i.images, g.files) + '\n');
  }
  setInetSession(i.images);
  parts.push(i.images.map(formatImage).join('\n' + '-'.repeat(72) + '\n\n'));
  parts.push(formatUnixSockets(i));
  return parts.join('');
}
