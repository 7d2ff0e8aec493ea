// The image schema (src/image-schema.ts) against what uses it: the C tables
// generated from it, docs/image-format.md's tables, and real images of the
// suite's own programs, walked key by key both ways. A renamed key is
// refused by a restart, naming the key, before any process exists.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { C_HEADER, renderSchemaHeader } from '../src/image-schema-c.js';
import { checkRecord, recordKeys, recordNames, IMAGE_SCHEMA, SCHEMA_FILE, type RecordName, type TypeNode } from '../src/image-schema.js';
import { checkpoint, ckrun } from './lib/ckrun.js';
import { editMeta, readMeta, toPlain } from './lib/craft.js';
import { EXAMPLES, ROOT } from './lib/paths.js';
import { findProcesses } from './lib/processes.js';
import { cborDecode, type Cbor } from './lib/cbor.js';
import { readHeaderBlock } from './lib/images.js';
import { Scope } from './lib/scope.js';
import { python3 } from './lib/examples.js';

test('schema: preload/schema.h is generated from the schema and current (npm run schema)', () => {
  const onDisk = fs.readFileSync(path.join(ROOT, C_HEADER), 'utf8');
  assert.ok(onDisk === renderSchemaHeader(), `${C_HEADER} is not what ${SCHEMA_FILE} generates: run npm run schema and commit it`);
});

test('schema: every record is used, every type parses, a union picks its alternative by CBOR type', () => {
  const used = new Set<string>(['header', 'meta', 'manifest']);
  const classOf = (t: TypeNode): string => (t.op === 'uint' || t.op === 'int' ? 'int' : t.op);
  const visit = (t: TypeNode, where: string): void => {
    if (t.op === 'record') used.add(t.name);
    if (t.op === 'array') visit(t.item, where);
    if (t.op === 'union') {
      const classes = t.alts.map(classOf);
      assert.is(new Set(classes).size, classes.length, `${where}: the alternatives of a union must differ in CBOR type`);
      t.alts.forEach((a) => visit(a, where));
    }
  };
  for (const r of recordNames()) for (const k of recordKeys(r)) visit(k.type, `${r}.${k.key}`);
  for (const r of recordNames()) assert.ok(used.has(r), `record ${r} of ${SCHEMA_FILE} is not reachable from header, meta or manifest`);
});

/** docs/image-format.md, split into its sections: heading line -> the lines under it. */
function docSections(): Map<string, string[]> {
  const text = fs.readFileSync(path.join(ROOT, 'docs', 'image-format.md'), 'utf8');
  const sections = new Map<string, string[]>();
  let cur: string[] = [];
  for (const line of text.split('\n')) {
    if (/^#{2,4} /.test(line)) sections.set(line.trim(), (cur = []));
    else cur.push(line);
  }
  return sections;
}

/** The rows of the section's table: the keys of the first cell (`a`, `b`) and the row's text. */
function tableRows(lines: string[]): { keys: string[]; text: string }[] {
  return lines
    .filter((l) => l.startsWith('| `'))
    .map((l) => ({ keys: [...l.split('|')[1].matchAll(/`([a-z_0-9]+)`/g)].map((m) => m[1]), text: l }));
}

test('schema: docs/image-format.md lists every key of every record, and no other', () => {
  const sections = docSections();
  const problems: string[] = [];
  for (const [name, rec] of Object.entries(IMAGE_SCHEMA)) {
    const [heading, rowKey] = rec.doc.split(' @ ');
    const lines = sections.get(heading);
    if (!lines) {
      problems.push(`record ${name}: docs/image-format.md has no heading "${heading}" (its doc in ${SCHEMA_FILE})`);
      continue;
    }
    const keys = recordKeys(name).map((k) => k.key);
    const rows = tableRows(lines);
    if (rowKey === undefined) {
      const documented = new Set(rows.flatMap((r) => r.keys));
      for (const k of keys) if (!documented.has(k)) problems.push(`record ${name}: key "${k}" has no row in the table under "${heading}"`);
      // a section may document two records (socket and inet): only its own keys are checked both ways
      const others = recordNames().filter((r) => r !== name && IMAGE_SCHEMA[r as RecordName].doc === rec.doc);
      const known = new Set([...keys, ...others.flatMap((r) => recordKeys(r).map((k) => k.key))]);
      for (const k of documented) if (!known.has(k)) problems.push(`"${heading}" documents key "${k}", which ${SCHEMA_FILE} does not list under ${name}`);
    } else {
      const row = rows.find((r) => r.keys.includes(rowKey));
      if (!row) {
        problems.push(`record ${name}: no row for "${rowKey}" under "${heading}"`);
        continue;
      }
      for (const k of keys) if (!new RegExp(`\\b${k}\\b`).test(row.text)) problems.push(`record ${name}: the row of "${rowKey}" under "${heading}" does not name key "${k}"`);
    }
  }
  assert.equal(problems, [], problems.join('\n'));
});

// ---- real images ----

function buildC(dir: string, name: string): string {
  const bin = path.join(dir, name);
  execFileSync('gcc', ['-O2', '-pthread', '-o', bin, path.join(EXAMPLES, `${name}.c`)], { stdio: ['ignore', 'pipe', 'pipe'] });
  return bin;
}

/** Keys of the schema no program below writes, and why. */
const NOT_WRITTEN_HERE: Record<string, string> = {
  'manifest.compressed': 'only with --compress (compress.test.ts)',
  'manifest.portable': 'only with --portable (contents.test.ts)',
  'process.compressed_bytes': 'only with --compress (compress.test.ts)',
  'inet.unsent_queue': 'written by earlier versions only (send_queue replaced it); still read',
  'inet.ended': 'a TCP connection both of whose ends one process holds, both shut down (sockets-tcp-states.test.ts: examples/tcp-states.c)',
  'unix.file_gone': 'only for a Unix socket whose file is no longer at its name (gaps.test.ts: examples/unixghost.c and examples/ghosts.c)',
  'socket.netlink': 'only for netlink sockets (sockets-netlink.test.ts: examples/netlink.c)',
  'netlink.portid': 'only for netlink sockets (sockets-netlink.test.ts: examples/netlink.c)',
  'netlink.groups': 'only for netlink sockets (sockets-netlink.test.ts: examples/netlink.c)',
  'netlink.dst_portid': 'only for netlink sockets (sockets-netlink.test.ts: examples/netlink.c)',
  'netlink.dst_groups': 'only for netlink sockets (sockets-netlink.test.ts: examples/netlink.c)',
  'fanotify_mark.mnt_id': 'a mark on a whole mount (FAN_MARK_MOUNT); examples/fanotify.c marks a directory',
  'file.tty': 'only for stdio that is a terminal (terminal.test.ts runs less in tmux); the programs here have pipes',
  'thread_attrs.runtime': 'only for SCHED_DEADLINE, which no program of the suite uses',
  'thread_attrs.deadline': 'only for SCHED_DEADLINE, which no program of the suite uses',
  'thread_attrs.period': 'only for SCHED_DEADLINE, which no program of the suite uses',
  'thread_attrs.util_min': 'only with utilization clamps (sched_setattr SCHED_FLAG_UTIL_CLAMP), which no program of the suite sets',
  'thread_attrs.util_max': 'only with utilization clamps (sched_setattr SCHED_FLAG_UTIL_CLAMP), which no program of the suite sets',
  'stdio_file.fd': 'only for a session whose stdio is a regular file (files-rollback.test.ts: > log); the programs here have pipes',
  'stdio_file.path': 'only for a session whose stdio is a regular file (files-rollback.test.ts: > log); the programs here have pipes',
  'stdio_file.dev': 'only for a session whose stdio is a regular file (files-rollback.test.ts: > log); the programs here have pipes',
  'stdio_file.ino': 'only for a session whose stdio is a regular file (files-rollback.test.ts: > log); the programs here have pipes',
  'stdio_file.offset': 'only for a session whose stdio is a regular file (files-rollback.test.ts: > log); the programs here have pipes',
  'stdio_file.flags': 'only for a session whose stdio is a regular file (files-rollback.test.ts: > log); the programs here have pipes',
  'stdio_file.same_as': 'only for a session whose stdio is a regular file (files-rollback.test.ts: > log); the programs here have pipes',
  'files.dirs': 'only with --snapshot-dir (snapdir.test.ts); the programs here take none',
  'snapshot_dir.path': 'only with --snapshot-dir (snapdir.test.ts); the programs here take none',
  'snapshot_dir.list': 'only with --snapshot-dir (snapdir.test.ts); the programs here take none',
  'snapshot_dir.list_crc': 'only with --snapshot-dir (snapdir.test.ts); the programs here take none',
  'snapshot_dir.entries': 'only with --snapshot-dir (snapdir.test.ts); the programs here take none',
  'snapshot_dir.bytes': 'only with --snapshot-dir (snapdir.test.ts); the programs here take none',
  'snapshot_dir.stored': 'only with --snapshot-dir (snapdir.test.ts); the programs here take none',
  'meta.stopped': 'only for a process stopped at the checkpoint (stopped.test.ts)',
  'meta.stopped_children': 'only for a parent of a stopped process (stopped.test.ts)',
  'file.owner': 'only for a descriptor with an owner or a signal for its I/O (F_SETOWN, F_SETSIG: gaps.test.ts, sigio)',
  'unix.reset': 'a Unix socket whose peer closed with bytes unread (sockets-unix-dgram.test.ts)',
  'passed.data': 'a pipe in flight with bytes in it (sockets-unix-dgram.test.ts)',
  'unix.shutdown': 'a Unix socket shut down in one direction; no program of the suite makes one',
  'pty.input': 'a pty with input its slave side has not read (terminal.test.ts: pty_input.py partial and raw)',
  'pty.lines': 'a pty whose slave side has complete lines it has not read (terminal.test.ts: pty_input.py lines)',
  'pty.hung_up': 'a hung-up terminal (gaps.test.ts: examples/ptyhup.c)',
  'region.guards': 'memory with guard pages (MADV_GUARD_INSTALL: gaps.test.ts, examples/guardpage.c)',
  'region.huge_page': 'hugetlb memory, which needs huge pages reserved (gaps.test.ts, examples/hugetlb.c)',
  'region.open_deleted': 'a private mapping of a removed file the program holds open (gaps.test.ts, examples/unlinkmap.c)',
  'socket.packet': 'only for packet sockets (sockets-packet.test.ts: examples/packet.c)',
  'packet.ifname': 'only for packet sockets (sockets-packet.test.ts: examples/packet.c)',
  'packet.num': 'only for packet sockets (sockets-packet.test.ts: examples/packet.c)',
  'packet.copy_thresh': 'a packet socket with a copy threshold (PACKET_COPY_THRESH); no program of the suite sets one',
  'packet.fanout': 'only for packet sockets (sockets-packet.test.ts: examples/packet.c)',
  'packet.rx_ring': 'only for packet sockets (sockets-packet.test.ts: examples/packet.c)',
  'packet.tx_ring': 'a packet socket with a transmit ring; no program of the suite sets one',
  'packet.memberships': 'only for packet sockets (sockets-packet.test.ts: examples/packet.c)',
  'unix.pending_bytes': 'a listener with a connection not yet accepted that holds bytes (sockets-unix.test.ts: a client outside the session; server-postgres.test.ts)',
  'inet.shutdown': 'a UDP socket the program shut down (gaps.test.ts: examples/udpshut.c)',
  'socket.filter': 'a socket with a packet filter (gaps.test.ts: examples/sockfilter.c)',
  'socket.filter_locked': 'a socket with a locked packet filter (gaps.test.ts: examples/sockfilter.c)',
};

/** A program whose child has exited and is not reaped yet: a zombie in the image, every time. */
const ZOMBIE_PROGRAM = `
import os, time
pid = os.fork()
if pid == 0:
    os._exit(3)
os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
print('the child is a zombie', flush=True)
while True:
    time.sleep(0.05)
`;

/** A program with a memfd mapping (mapped through a second descriptor: Python's mmap dups it) and a removed SysV segment. */
const SHM_PROGRAM = `
import ctypes, mmap, os, time
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
fd = os.memfd_create('schema-test')
os.ftruncate(fd, 65536)
m = mmap.mmap(fd, 65536, mmap.MAP_SHARED)
m[0:5] = b'hello'
sid = libc.shmget(0, 65536, 0o1600)
assert sid >= 0, 'shmget'
addr = libc.shmat(sid, None, 0)
ctypes.memset(addr, 7, 4096)
libc.shmctl(sid, 0, None)
n = 0
while True:
    n += 1
    print('step', n, flush=True)
    time.sleep(0.05)
`;

interface Walk {
  seen: Set<string>;
  problems: string[];
}

/** Records which record.key occur in the decoded value, as the schema types them, and which `since=` keys are missing. */
function walkValue(v: unknown, t: TypeNode, w: Walk, where: string): void {
  if (t.op === 'array' && Array.isArray(v)) v.forEach((x, i) => walkValue(x, t.item, w, `${where}[${i}]`));
  else if (t.op === 'union') {
    for (const a of t.alts) if ((a.op === 'record' && isMap(v)) || (a.op === 'array' && Array.isArray(v))) walkValue(v, a, w, where);
  } else if (t.op === 'record' && isMap(v)) walkRecord(v, t.name, w, where);
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function walkRecord(m: Record<string, unknown>, record: string, w: Walk, where: string): void {
  const kind = typeof m.kind === 'string' ? m.kind : undefined;
  for (const spec of recordKeys(record)) {
    const here = spec.kinds === undefined || (kind !== undefined && spec.kinds.includes(kind));
    if (spec.key in m) {
      w.seen.add(`${record}.${spec.key}`);
      walkValue(m[spec.key], spec.type, w, `${where}.${spec.key}`);
    } else if (spec.since && here && !(spec.unless !== undefined && spec.unless in m)) {
      w.problems.push(`${where}: key "${spec.key}" (record ${record}, since=${spec.since}) is missing from an image this build wrote`);
    }
  }
}

function decodeManifest(file: string): unknown {
  let v = toPlain(cborDecode(fs.readFileSync(file)).value);
  if (Array.isArray(v)) v = toPlain(cborDecode(v[0] as Buffer).value);
  return v;
}

/**
 * fn over every item, at most n at once; the results in the items' order.
 * After a failure no new item starts, and the first failure is thrown once
 * every item started has ended (nothing is launched behind the cleanup).
 */
async function inPool<T, R>(items: T[], n: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (next < items.length && !failed) {
      const i = next++;
      try {
        out[i] = await fn(items[i]);
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  };
  const ends = await Promise.allSettled(Array.from({ length: Math.min(n, items.length) }, worker));
  const first = ends.find((e): e is PromiseRejectedResult => e.status === 'rejected');
  if (first) throw first.reason;
  return out;
}

test('schema: real images of the suite\'s programs keep to the schema both ways (no key outside it, every required and since= key there, every key written by some program)', async () => {
  const scope = new Scope('schema-real');
  try {
    const bins = scope.dir('bin');
    const work = scope.dir('work');
    fs.writeFileSync(path.join(work, 'input'), Buffer.alloc(20_000, 7));
    fs.writeFileSync(path.join(work, 'shared'), Buffer.alloc(1 << 20, 1));
    fs.writeFileSync(path.join(work, 'private'), Buffer.alloc(1 << 20, 2));
    fs.writeFileSync(path.join(work, 'shm.py'), SHM_PROGRAM);
    const c = (name: string, ...args: string[]): string[] => [buildC(bins, name), ...args];
    const programs: Record<string, string[]> = {
      family: c('family', '--steps', '100000'),
      files: c('files', path.join(work, 'log'), path.join(work, 'input')),
      mmap: c('mmap', path.join(work, 'shared'), path.join(work, 'private')),
      epoll: c('ev-epoll'),
      timerfd: c('ev-timerfd'),
      signalfd: c('ev-signalfd'),
      inotify: c('ev-inotify'),
      ptimer: c('ev-ptimer'),
      // its child outlives the checkpoint however slow the machine: a zombie's keys come from zombie.py alone
      pidfd: [python3(), path.join(EXAMPLES, 'ev-pidfd.py'), '400'],
      zombie: [python3(), path.join(work, 'zombie.py')],
      pool: [python3(), path.join(EXAMPLES, 'pool.py')],
      inetpair: c('inet', 'pair', '100000', '4'),
      inethalf: c('inet', 'half', '100000', '6'),
      udp: c('inet', 'udp', '100000', '6'),
      unixsock: c('unixsock', scope.dir('unixsock')),
      unixpair: c('unixpair'),
      memattrs: c('memattrs', '--steps', '100000', '--mlockall', 'future'),
      shm: [python3(), path.join(work, 'shm.py')],
      locks: c('locks', scope.dir('locks')),
      kinds: c('kinds', scope.dir('kinds')),
      fifos: c('fifos', scope.dir('fifos')),
      mqueue: c('mqueue', scope.dir('mqueue'), `/ckrun-schema-${process.pid}`),
      fanotify: c('fanotify', scope.dir('fanotify')),
      deleted: c('deleted', scope.dir('deleted')),
      ptyjobs: c('ptyjobs', '--steps', '100000'),
      attrs: c('attrs', '--steps', '100000'),
      // threads with credentials of their own (a thread's creds)
      threadcreds: c('threadcreds', '--steps', '100000'),
      sysvshm: c('sysv', 'shm', String(0x5c000000 + process.pid), '100000'),
      sysvsem: c('sysv', 'sem', String(0x5c100000 + process.pid), '100000'),
      sysvmsg: c('sysv', 'msg', String(0x5c200000 + process.pid), '100000'),
    };
    // a few sessions at a time: most of each is waiting (node starting,
    // the first line, the reaping after kill -9), not work
    fs.writeFileSync(path.join(work, 'zombie.py'), ZOMBIE_PROGRAM);
    const gens = await inPool(Object.entries(programs), 4, async ([name, program]) => {
      const dir = scope.ckptDir(`ckpt-${name}`);
      const proc = scope.launch({ program, dir, cwd: work, label: name });
      await proc.waitFor(() => proc.lines.length >= 1, `${name}: its first line of output`);
      const gen = await checkpoint(dir);
      await scope.kill9(proc);
      return gen;
    });
    const w: Walk = { seen: new Set(), problems: [] };
    for (const gen of gens) {
      const manifest = decodeManifest(path.join(gen, 'manifest.cbor'));
      const why = checkRecord(manifest, 'manifest');
      if (why) w.problems.push(`${gen}/manifest.cbor: ${why}`);
      walkRecord(manifest as Record<string, unknown>, 'manifest', w, `${gen}/manifest.cbor`);
      for (const f of fs.readdirSync(gen).filter((n) => n.endsWith('.ckpt'))) {
        const file = path.join(gen, f);
        const meta = toPlain(readMeta(file)) as Record<string, unknown>;
        const unfit = checkRecord(meta, 'meta');
        if (unfit) w.problems.push(`${file}: ${unfit}`);
        walkRecord(meta, 'meta', w, file);
        const header = toPlain(readHeaderBlock(file).header);
        const hunfit = checkRecord(header, 'header');
        if (hunfit) w.problems.push(`${file} (header): ${hunfit}`);
        walkRecord(header as Record<string, unknown>, 'header', w, file);
      }
    }
    for (const r of recordNames())
      for (const k of recordKeys(r)) {
        const id = `${r}.${k.key}`;
        if (!w.seen.has(id) && !(id in NOT_WRITTEN_HERE))
          w.problems.push(`no image of these programs has key ${id}: the writer no longer writes it (remove it from ${SCHEMA_FILE}) or NOT_WRITTEN_HERE in test/schema.test.ts should say which test does`);
        if (w.seen.has(id) && id in NOT_WRITTEN_HERE) w.problems.push(`${id} is written here after all: remove it from NOT_WRITTEN_HERE`);
      }
    assert.equal(w.problems, [], w.problems.join('\n'));
  } finally {
    await scope.cleanup();
    // the killed sysv programs leave their objects (a restart would take them over)
    const keys: [string, number][] = [['-M', 0x5c000000], ['-M', 0x5c000001], ['-S', 0x5c100000], ['-Q', 0x5c200000]];
    for (const [opt, base] of keys) {
      try {
        execFileSync('ipcrm', [opt, String(base + process.pid)], { stdio: 'ignore' });
      } catch {
        // not there
      }
    }
  }
});

test('schema: a renamed key (pipe.capacity) is refused by restart, naming the key, before any process exists', async () => {
  const scope = new Scope('schema-rename');
  try {
    const bin = buildC(scope.dir('bin'), 'family');
    const dir = scope.ckptDir();
    const proc = scope.launch({ program: [bin, '--steps', '100000'], dir, cwd: scope.dir('work') });
    await proc.waitFor(() => proc.lines.length >= 3, 'three lines from the family');
    const gen = await checkpoint(dir);
    await scope.kill9(proc);
    let renamed = '';
    for (const f of fs.readdirSync(gen).filter((n) => n.endsWith('.ckpt'))) {
      if (renamed) break;
      editMeta(path.join(gen, f), (m) => {
        for (const d of m['files'] as Record<string, Cbor>[]) {
          const pipe = d['pipe'] as Record<string, Cbor> | undefined;
          if (renamed || !pipe || pipe['capacity'] === undefined) continue;
          pipe['capcity'] = pipe['capacity'];
          delete pipe['capacity'];
          renamed = path.join(gen, f);
        }
      });
    }
    assert.ok(renamed, 'the family has a pipe with its capacity');
    const running = (): number[] => findProcesses((p) => p.cmdline[0] === bin).map((p) => p.pid);
    // the restore host (C) on that image alone
    const host = path.join(ROOT, 'build', 'Release', 'ckrun-restore');
    let out = '';
    let status = 0;
    try {
      execFileSync(host, [renamed], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      const err = e as { status: number; stderr: Buffer };
      status = err.status;
      out = err.stderr.toString();
    }
    assert.is(status, 2, `the restore host refuses (exit 2): ${out}`);
    assert.match(out, /files\[\d+\]\.pipe: unknown key "capcity" \(record "pipe"\)/);
    assert.match(out, /a line such as capcity: 'uint\?' to pipe\.keys in src\/image-schema\.ts/);
    const tsWords = checkRecord(toPlain(readMeta(renamed)), 'meta');
    assert.ok(tsWords && out.includes(tsWords), `the restore host and ckrun's reader say the same: ${out} / ${tsWords}`);
    assert.equal(running(), [], 'no process of the family exists');
    // ckrun restart of the generation (ckrun's reader, then the restore host)
    const r = await ckrun(['restart', '--dir', dir]);
    assert.is.not(r.code, 0, r.describe());
    assert.match(r.stderr, /unknown key "capcity" \(record "pipe"\)/, r.describe());
    assert.equal(running(), [], 'no process of the family exists');
  } finally {
    await scope.cleanup();
  }
});

test.run();
