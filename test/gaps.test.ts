// Breadth gaps found by running CRIU's zdtm static tests under ckrun, each
// closed with a small program of our own that checks its own state at
// every step and prints FAIL at the first difference: it is launched,
// checkpointed, killed with kill -9 and restarted, twice, and must run to
// its end.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { exampleProgram, python3, socketExample } from './lib/examples.js';
import { lastLine } from './lib/lines.js';
import { freePort } from './lib/net.js';
import { CKRUN, EXAMPLES, NODE, T_STEP } from './lib/paths.js';
import { Proc, sleep } from './lib/proc.js';
import { checkpoint, ckrun } from './lib/ckrun.js';
import { generations } from './lib/images.js';
import { Scope } from './lib/scope.js';
import { assertNoFailure, refusedAndRunsOn } from './lib/refused.js';


/** What a step line says after "step K " ("fds ..." for a program that lists its descriptors). */
function afterStep(line: string | undefined): string {
  return (line ?? '').replace(/^step \d+ ?/, '');
}

/**
 * The descriptors a restarted program lists at its first step are those it
 * listed at its last step before the kill (after the checkpoint: ckrun's
 * own change tracking and connection included).
 */
function assertSameFds(before: Proc, after: Proc, what: string): void {
  const last = [...before.lines].reverse().find((l) => /^step \d+ fds /.test(l));
  const first = after.lines.find((l) => /^step \d+ fds /.test(l));
  assert.is(afterStep(first), afterStep(last), `${what}: the restarted program's descriptors differ from those it had`);
}

/** Launch, checkpoint, kill -9, restart (twice), then the program runs to "done" checking itself. */
async function twiceThroughRestart(name: string, program: string[], o: { sameFds?: boolean; sessionLeader?: boolean; stdinNull?: boolean } = {}): Promise<void> {
  const scope = new Scope(name);
  try {
    const ckpt = scope.ckptDir();
    // sessionLeader: ckrun leads the family's session (started by setsid, as in a new terminal or tmux window);
    // stdinNull: ckrun's own stdin is /dev/null (a batch job, a service)
    let p = o.sessionLeader
      ? scope.track(new Proc('setsid', [NODE, CKRUN, '--dir', ckpt, '--', ...program], { label: `setsid ckrun ${name}` }))
      : o.stdinNull
        ? scope.track(new Proc('sh', ['-c', 'exec "$@" < /dev/null', 'sh', NODE, CKRUN, '--dir', ckpt, '--', ...program], { label: `ckrun ${name} < /dev/null` }))
        : scope.launch({ dir: ckpt, program, label: `ckrun ${name}` });
    await p.waitForStep(3);
    await checkpoint(ckpt);
    await p.waitForStep(p.maxStep + 2);
    await scope.kill9(p);
    assertNoFailure(p, `${name}, launched`);
    for (let round = 1; round <= 2; round++) {
      const before = p;
      p = scope.restart({ dir: ckpt, label: `${name}: restart ${round}` });
      await p.waitForStep(p.maxStep + 2);
      if (o.sameFds) assertSameFds(before, p, `${name}, restart ${round}`);
      if (round === 1) {
        await checkpoint(ckpt);
        await p.waitForStep(p.maxStep + 2);
        await scope.kill9(p);
        assertNoFailure(p, `${name}, restart ${round}`);
        continue;
      }
      const exit = await p.waitExit();
      assertNoFailure(p, `${name}, restart ${round}`);
      assert.is(exit.code, 0, p.describe());
      assert.is(lastLine(p.lines), 'done', p.describe());
    }
  } finally {
    await scope.cleanup();
  }
}

test('sockets bound to addresses not of this machine (IP_FREEBIND, also cleared after bind, IPv4 and IPv6) are bound there again', async () => {
  await twiceThroughRestart('freebind', [socketExample('freebind'), '--steps', '80']);
});

test('socket options a program set come back: TCP_CORK, SO_PRIORITY, SO_MARK, SO_BINDTODEVICE, SO_REUSEPORT cleared after bind on a shared port', async () => {
  await twiceThroughRestart('sockopts', [socketExample('sockopts'), '--steps', '80']);
});

test('buffer sizes a program set and SO_BUF_LOCK come back (TCP, UDP beyond rmem_max, Unix), sizes it left alone stay unlocked', async () => {
  await twiceThroughRestart('sockbuf', [socketExample('sockbuf'), '--steps', '60']);
});

test('a socket with an eBPF packet filter (SO_ATTACH_BPF), which the kernel does not give back, fails the checkpoint, naming it, and the program runs on', async () => {
  await refusedAndRunsOn('sockfilter-ebpf', exampleProgram('sockfilter', ['--steps', '80', '--ebpf']), 'ckrun sockfilter --ebpf', /packet filter ckrun cannot read: descriptor \d+: an eBPF program \(SO_ATTACH_BPF\)/);
});

test('a process in a namespace of its own (unshare(CLONE_NEWUTS), as sandboxes do), which a restart cannot make again, fails the checkpoint, naming it, and the program runs on', async () => {
  await refusedAndRunsOn('nsown', exampleProgram('nsown', ['--steps', '60']), 'ckrun nsown', /process \d+ \(nsown\) is in a uts namespace of its own/);
});

test('a SysV segment attached once and split by mprotect comes back attached once, each piece with its protection and bytes', async () => {
  await twiceThroughRestart('shmsplit', exampleProgram('shmsplit', ['--steps', '80']));
});

test('a SysV attachment with a piece unmapped: the restart refuses, naming the segment, and nothing runs', async () => {
  const scope = new Scope('shmsplit-partial');
  try {
    const ckpt = scope.ckptDir();
    const p = scope.launch({ dir: ckpt, program: exampleProgram('shmsplit', ['--steps', '200', '--partial']), label: 'ckrun shmsplit --partial' });
    await p.waitForStep(2);
    await checkpoint(ckpt);
    await scope.kill9(p);
    const r = await ckrun(['restart', '--dir', ckpt]);
    assert.not.equal(r.code, 0, `the restart must refuse:\n${r.describe()}`);
    assert.match(r.stderr, /has only part of the SysV shared memory segment \d+ attached \(12288 of its 16384 bytes/, r.describe());
    assert.equal(scope.strays(), [], 'nothing of the session runs');
  } finally {
    await scope.cleanup();
  }
});

test('a SysV segment removed (IPC_RMID) while a parent and its child attach it comes back removed: mode, key 0, SHM_DEST in IPC_STAT and ipcs, gone after the last detach', async () => {
  await twiceThroughRestart('shmrmid', exampleProgram('shmrmid', ['--steps', '60']));
});

test('an rseq area a thread registered itself through syscall() after giving up glibc\'s, also in its child (fork), stays registered and written by the kernel; twice through a restart', async () => {
  await twiceThroughRestart('rseqown', exampleProgram('rseqown', ['--steps', '80']));
});

test('an rseq area registered by a system call instruction of the program\'s own (no library sees it) fails the checkpoint, naming the thread, and keeps its registration', async () => {
  await refusedAndRunsOn('rseqown-raw', exampleProgram('rseqown', ['--steps', '80', '--raw']), 'ckrun rseqown --raw', /restartable-sequence \(rseq\) area of its own: thread \d+: ckrun registers only glibc's area again and those registered through libc's syscall\(\)/);
});

test("/dev/null and /dev/zero the program opened itself keep their access modes when ckrun's stdin is /dev/null too (they were restored as the session's stdin: writes failed with EBADF)", async () => {
  await twiceThroughRestart('devnull', exampleProgram('devnull', ['--steps', '60']), { stdinNull: true });
});

test('a TCP connection shut down (SHUT_WR) behind bytes not sent yet (FIN_WAIT1) delivers exactly those bytes, then EOF', async () => {
  await twiceThroughRestart('tcpfin', [socketExample('tcpfin'), '--steps', '80']);
});

test('the same connection in a program that gave up root (user nobody: no TCP_REPAIR of its own): ckrun, root, reads the unsent bytes for it', async () => {
  assert.is(process.getuid?.(), 0, 'this test needs root: ckrun reads the queue with CAP_NET_ADMIN');
  await twiceThroughRestart('tcpfin-nobody', [socketExample('tcpfin'), '--steps', '80', '--as-nobody']);
});

test('two processes streaming over localhost TCP with full buffers both ways: every byte in flight arrives exactly once', async () => {
  await twiceThroughRestart('tcp-stream', [socketExample('tcp-stream'), '--steps', '80']);
});

test('UDP sockets shut down (SHUT_WR, SHUT_RD, and SHUT_RDWR unconnected) stay shut', async () => {
  await twiceThroughRestart('udpshut', [socketExample('udpshut'), '--steps', '80']);
});

test('a shared file mapping made read-only, whose file was open for writing, can be made writable again after a restart', async () => {
  await twiceThroughRestart('mapwrite', exampleProgram('mapwrite', ['--steps', '80']));
});

test('descriptors that send I/O signals (O_ASYNC) keep their owners (the process, its group, its child) and signals (F_SETSIG), and the signals come', async () => {
  await twiceThroughRestart('sigio', exampleProgram('sigio', ['--steps', '60']));
});

// (the first checkpoint comes right after the program forked and exited: a child whose parent had
// exited before its fork handler ran kept its parent's connection to ckrun, and the checkpoint waited
// for that parent until the child ended: 'every process of the session exited during the checkpoint')
test('a family in the session and process group ckrun leads (ckrun started by setsid) restarts as root with its session and group, twice', async () => {
  await twiceThroughRestart('ckrun-leads', [python3(), path.join(EXAMPLES, 'leadsession.py'), '80'], { sessionLeader: true });
});

test('Unix sockets keep their peer credentials (SO_PEERCRED: a socketpair, a connection from a child that became nobody, a listener), not the restorer\'s, twice', async () => {
  await twiceThroughRestart('peercred', exampleProgram('peercred', ['--steps', '60']));
});

test('classic BPF packet filters (SO_ATTACH_FILTER) on a UDP socket (locked) and a Unix datagram socket come back and still filter, twice', async () => {
  await twiceThroughRestart('sockfilter', exampleProgram('sockfilter', ['--steps', '60']));
});

test('UDP-Lite sockets with a datagram in flight and their checksum coverage, an ICMP ping socket keeping its identifier, a raw ICMP socket with its filter, a TTL the program set: twice', async () => {
  // ping sockets are open to the groups of net.ipv4.ping_group_range (the kernel's default: none); root's, for this test
  const RANGE = '/proc/sys/net/ipv4/ping_group_range';
  const before = fs.readFileSync(RANGE, 'utf8').trim();
  const [lo, hi] = before.split(/\s+/).map(Number);
  if (!(lo! <= 0 && 0 <= hi!)) fs.writeFileSync(RANGE, '0 0');
  try {
    await twiceThroughRestart('ipkinds', exampleProgram('ipkinds', ['--steps', '60']));
  } finally {
    fs.writeFileSync(RANGE, before.replace(/\s+/, ' '));
  }
});

test('a file the program writes under a write lease, with no handler for the lease-break signal, is saved without breaking the lease and comes back leased with its content; pipe ends keep their exact flags (no O_LARGEFILE)', async () => {
  await twiceThroughRestart('lease', exampleProgram('lease', ['--steps', '30']));
});

test('Unix sockets with nothing in flight (unbound, bound but not listening) and a receiver with SO_PEEK_OFF: the offset and SO_PASSSEC come back, the queue untouched', async () => {
  await twiceThroughRestart('unixidle', [socketExample('unixidle'), '--steps', '60']);
});

test('a FIFO, a device node and a Unix socket file removed while open come back open and still removed (the FIFO with its bytes in flight)', async () => {
  await twiceThroughRestart('ghosts', exampleProgram('ghosts', ['--steps', '60']));
});

test('a file whose name was removed while a hard link beside it keeps it comes back as that name\'s file (zdtm unlink_fstat03)', async () => {
  await twiceThroughRestart('ghosts-linked', exampleProgram('ghosts', ['--linked', '--steps', '60']));
});

test('a file whose name was removed while a hard link in another directory keeps it fails the checkpoint, naming it, and the program runs on', async () => {
  await refusedAndRunsOn('ghosts-linked-elsewhere', exampleProgram('ghosts', ['--linked-elsewhere', '--steps', '60']), 'ckrun ghosts --linked-elsewhere', /descriptor \d+ \(\/tmp\/ckrun-ghosts-\w+\/a \(deleted\)\) still has 1 other name\(s\)/);
});

test('Unix sockets whose files are gone (unlinked with a regular file put at the name, or their directory removed) keep their names, connection and sender, and the names stay as the program left them', async () => {
  await twiceThroughRestart('unixghost', exampleProgram('unixghost', ['--steps', '80']));
});

test('a /proc file and a working directory of an exited child, an ended TCP connection without its other end and an epoll entry whose file only a child holds each fail the checkpoint, naming it; namespace descriptors come back', async () => {
  const scope = new Scope('gone');
  try {
    const ckpt = scope.ckptDir();
    let p = scope.launch({ dir: ckpt, program: exampleProgram('gone', ['--steps', '80']), label: 'ckrun gone' });
    const pid = Number((await p.waitForLine(/^pid \d+$/)).split(' ')[1]);
    const refusals: [string, RegExp][] = [
      ['holding proc fd', /descriptor \d+ refers to \/proc\/\d+\/status, whose process has exited/],
      ['holding proc cwd', /the working directory is \/proc\/\d+ \(deleted\)/],
      ['holding ended tcp', /descriptor \d+ \(TCP port \d+ to port \d+\): its connection ended .*state CLOSE/],
      ['holding epoll orphan', /epoll descriptor \d+: its entry for descriptor \d+ \(data 0x7\) watches a file that descriptor \d+ no longer refers to and no other descriptor of this process holds/],
    ];
    for (const [state, why] of refusals) {
      await p.waitForLine(state);
      const r = await ckrun(['checkpoint', '--dir', ckpt]);
      assert.is(r.code, 1, `${state}: the checkpoint must fail:\n${r.describe()}`);
      assert.match(r.stderr, why, r.describe());
      assert.equal(generations(ckpt), [], `${state}: no generation is left behind`);
      process.kill(pid, 'SIGUSR1');
    }
    await p.waitForLine('released');
    await p.waitForStep(3);
    await checkpoint(ckpt);
    await p.waitForStep(p.maxStep + 2);
    await scope.kill9(p);
    assertNoFailure(p, 'gone, launched');
    for (let round = 1; round <= 2; round++) {
      p = scope.restart({ dir: ckpt, label: `gone: restart ${round}` });
      await p.waitForStep(p.maxStep + 2);
      if (round === 1) {
        await checkpoint(ckpt);
        await p.waitForStep(p.maxStep + 2);
        await scope.kill9(p);
        assertNoFailure(p, `gone, restart ${round}`);
        continue;
      }
      const exit = await p.waitExit();
      assertNoFailure(p, `gone, restart ${round}`);
      assert.is(exit.code, 0, p.describe());
      assert.is(lastLine(p.lines), 'done', p.describe());
    }
  } finally {
    await scope.cleanup();
  }
});

test('shared anonymous memory a child maps whole and its parent only in part keeps every page, also those only the child maps; MAP_DROPPABLE memory stays droppable; a private view of a memfd follows the object; the restarted program has exactly the descriptors it had', async () => {
  await twiceThroughRestart('memcorners', exampleProgram('memcorners', ['--steps', '80']), { sameFds: true });
});

test('a program reading its own /proc/self/maps 64 bytes at a time reads on after a restart from where it was, and each whole pass is its list (DMTCP procfd1); twice through a restart', async () => {
  await twiceThroughRestart('mapsread', exampleProgram('mapsread', ['--steps', '240']));
});

test('guard pages (MADV_GUARD_INSTALL) in anonymous memory and in a private mapping of a deleted file come back guarded, the pages around them with their bytes; twice through a restart', async () => {
  await twiceThroughRestart('guardpage', exampleProgram('guardpage', ['--steps', '80']));
});

test('private mappings of a removed file and of a memfd that the program still holds open keep following the file in the pages it did not write (zdtm unlink_mmap02), and keep the pages it wrote; twice through a restart', async () => {
  await twiceThroughRestart('unlinkmap', exampleProgram('unlinkmap', ['--steps', '80']));
});

test('a hung-up terminal the program still holds (its master closed, as after an ssh login ended; zdtm pty04), in two descriptions, one shared with a child, comes back hung up: end of file, EIO, POLLHUP, its flags; twice through a restart', async () => {
  await twiceThroughRestart('ptyhup', exampleProgram('ptyhup', ['--steps', '80']));
});

const NR_HUGEPAGES = '/proc/sys/vm/nr_hugepages';

function freeHugePages(): number {
  return Number(/^HugePages_Free:\s+(\d+)/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0);
}

/** Runs with at least n free huge pages of the default size (reserved here, as root: a machine has none by default), given back after. */
async function withHugePages(n: number, run: () => Promise<void>): Promise<void> {
  const before = Number(fs.readFileSync(NR_HUGEPAGES, 'utf8'));
  if (freeHugePages() < n) fs.writeFileSync(NR_HUGEPAGES, String(before + n - freeHugePages()));
  try {
    if (freeHugePages() < n) throw new Error(`cannot reserve ${n} huge pages (${NR_HUGEPAGES}; free: ${freeHugePages()}): this test needs them`);
    await run();
  } finally {
    fs.writeFileSync(NR_HUGEPAGES, String(before));
  }
}

test('hugetlb memory (private and shared anonymous MAP_HUGETLB, a shared child writes to, a memfd with MFD_HUGETLB mapped shared and privately) comes back as hugetlb memory of the same page size on the same device, with its bytes; twice through a restart', async () => {
  await withHugePages(24, () => twiceThroughRestart('hugetlb', exampleProgram('hugetlb', ['--steps', '80'])));
});

test('a restart of hugetlb memory with too few free huge pages refuses before any process exists, saying how many it needs; with them it runs on', async () => {
  await withHugePages(24, async () => {
    const scope = new Scope('hugetlb-short');
    try {
      const ckpt = scope.ckptDir();
      let p = scope.launch({ dir: ckpt, program: exampleProgram('hugetlb', ['--steps', '60']), label: 'ckrun hugetlb' });
      await p.waitForStep(3);
      const gen = await checkpoint(ckpt);
      await scope.kill9(p);
      const shown = await ckrun(['inspect', gen]);
      assert.is((shown.stdout.match(/\(hugetlb, pages of 2 MiB\)/g) ?? []).length, 8, `inspect names the hugetlb regions of both processes\n${shown.describe()}`);
      const reserved = Number(fs.readFileSync(NR_HUGEPAGES, 'utf8'));
      fs.writeFileSync(NR_HUGEPAGES, '2');
      try {
        const r = await ckrun(['restart', '--dir', ckpt]);
        assert.is(r.code, 2, r.describe());
        // the parent's private memory, the child's copy of it, the shared memory and the memfd: 2 pages each;
        // the private view of the memfd: its one written page, in the parent and in the child's copy
        assert.match(r.stderr, /needs 10 huge pages of 2048 KiB, and only 2 are free/, r.describe());
        const left = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d) && fs.existsSync(`/proc/${d}/exe`) && (() => { try { return fs.readlinkSync(`/proc/${d}/exe`).endsWith('/hugetlb'); } catch { return false; } })());
        assert.equal(left, [], 'no process of the program is left');
      } finally {
        fs.writeFileSync(NR_HUGEPAGES, String(reserved));
      }
      p = scope.restart({ dir: ckpt, label: 'hugetlb: restart with the pages' });
      const exit = await p.waitExit();
      assertNoFailure(p, 'hugetlb restarted');
      assert.is(exit.code, 0, p.describe());
      assert.is(lastLine(p.lines), 'done', p.describe());
    } finally {
      await scope.cleanup();
    }
  });
});

test('a private mapping of a deleted file that reaches beyond the end of the file fails the checkpoint, naming it, and the program runs on', async () => {
  await refusedAndRunsOn('beyond-eof', exampleProgram('guardpage', ['--steps', '60', '--beyond-eof']), 'ckrun guardpage --beyond-eof', /the region 0x[0-9a-f]+-0x[0-9a-f]+ \(\/tmp\/ckrun-guardpage-\w+ \(deleted\)\) holds pages that cannot be read/);
});

test('a program that unmapped its vdso and vvar pages comes back without them', async () => {
  await twiceThroughRestart('vdso-unmapped', exampleProgram('vdsoclock', ['--steps', '60', '--unmapped']));
});

/** A line client holding one connection, as a keep-alive HTTP client would: each ask waits for its answer. */
function lineClient(port: number): { ready: Promise<void>; ask(word: string, what: string): Promise<string>; end(): void; closed(): string } {
  const sock = net.connect(port, '127.0.0.1');
  const lines: string[] = [];
  let buf = '';
  let closed = '';
  sock.setEncoding('utf8');
  sock.on('data', (d: string) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  sock.on('error', (e) => (closed ||= e.message));
  sock.on('close', () => (closed ||= 'closed by the server'));
  const ready = new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  return {
    ready,
    async ask(word, what) {
      const n = lines.length;
      sock.write(`${word}\n`);
      const until = Date.now() + T_STEP;
      while (lines.length <= n && !closed && Date.now() < until) await sleep(10);
      if (lines.length > n) return lines[n]!;
      assert.unreachable(`${what}: no answer to ${word} on the client's connection (${closed || 'none within the time'})`);
      return '';
    },
    end: () => sock.end(),
    closed: () => closed,
  };
}

test('a keep-alive connection from a client outside the session survives --checkpoint-on USR1 and --resume, twice: the same socket gets the next answers (as root: TCP_REPAIR)', async () => {
  assert.is(process.getuid?.(), 0, 'this test needs root: CAP_NET_ADMIN, for TCP_REPAIR');
  const scope = new Scope('keepalive');
  let client: ReturnType<typeof lineClient> | undefined;
  try {
    const ckpt = path.join(scope.root, 'ckpt'); // made by the first run
    scope.ckptDirs.push(ckpt);
    const port = await freePort();
    const run = (label: string): Proc =>
      scope.launch({ program: [socketExample('keepalive'), String(port)], extra: ['-v', '--resume', '--dir', ckpt, '--checkpoint-on', 'USR1'], label });
    const stop = async (p: Proc, gen: number): Promise<void> => {
      process.kill(p.pid, 'SIGUSR1');
      const exit = await p.waitExit();
      assert.is(exit.code, 75, `USR1: ckrun should exit 75 (checkpointed and stopped)\n${p.describe()}`);
      assert.ok(fs.existsSync(path.join(ckpt, String(gen), 'repair_frozen')), `generation ${gen} is not marked frozen\n${p.describe()}`);
      await sleep(200); // a FIN or RST from the kill would have reached the client by now
      assert.is(client!.closed(), '', 'the client saw its connection end while the program was stopped');
    };
    const resumed = async (label: string): Promise<Proc> => {
      const p = run(label);
      await p.waitFor(() => /process \d+ restored/.test(p.stderr), 'the restore');
      return p;
    };
    const first = run('ckrun keepalive');
    await first.waitForLine('listening');
    client = lineClient(port);
    await client.ready;
    assert.is(await client.ask('a', 'first run'), '1 a');
    assert.is(await client.ask('b', 'first run'), '2 b');
    await stop(first, 1);
    const second = await resumed('resume 1');
    assert.is(await client.ask('c', 'after the first resume'), '3 c');
    assert.not.ok(fs.existsSync(path.join(ckpt, '1', 'repair_frozen')), 'the mark of generation 1 is used once');
    await stop(second, 2);
    const third = await resumed('resume 2');
    assert.is(await client.ask('d', 'after the second resume'), '4 d');
    assert.not.ok(fs.existsSync(path.join(ckpt, '2', 'repair_frozen')), 'the mark of generation 2 is used once');
    client.end();
    const exit = await third.waitExit();
    assert.is(exit.code, 0, `the server ends when its client closes\n${third.describe()}`);
  } finally {
    client?.end();
    await scope.cleanup();
  }
});

test('a keep-alive connection from a client outside the session lives through kill -9 of ckrun and a restart when nothing passed on it since the checkpoint, twice; one that carried bytes since ends at the kill (as root: TCP_REPAIR)', async () => {
  assert.is(process.getuid?.(), 0, 'this test needs root: CAP_NET_ADMIN, for TCP_REPAIR');
  const scope = new Scope('keepalive-kill');
  let client: ReturnType<typeof lineClient> | undefined;
  try {
    const ckpt = scope.ckptDir('ckpt');
    const port = await freePort();
    const killed = async (p: Proc, gen: number, frozen: boolean): Promise<void> => {
      process.kill(p.pid, 'SIGKILL');
      await p.waitExit();
      await sleep(300); // the family ends itself; a FIN or RST from its kill would have reached the client by now
      const marks = fs.readdirSync(path.join(ckpt, String(gen))).filter((n) => n.startsWith('repair_frozen.'));
      if (frozen) {
        assert.is(marks.length, 1, `generation ${gen}: the server's mark (repair_frozen.PID) is missing\n${p.describe()}`);
        assert.is(client!.closed(), '', 'the client saw its connection end at the kill');
      } else {
        assert.is(marks.length, 0, `generation ${gen}: a connection that carried bytes since the checkpoint was marked frozen`);
        assert.ok(client!.closed() !== '', 'a connection that carried bytes since the checkpoint did not end at the kill');
      }
    };
    const restarted = async (label: string): Promise<Proc> => {
      const p = scope.restart({ dir: ckpt, label, extra: ['-v'] });
      await p.waitFor(() => /process \d+ restored/.test(p.stderr), 'the restore');
      return p;
    };
    const first = scope.launch({ dir: ckpt, program: [socketExample('keepalive'), String(port)], label: 'ckrun keepalive' });
    await first.waitForLine('listening');
    client = lineClient(port);
    await client.ready;
    assert.is(await client.ask('a', 'first run'), '1 a');
    assert.is(await client.ask('b', 'first run'), '2 b');
    await checkpoint(ckpt);
    await killed(first, 1, true);
    const second = await restarted('restart 1');
    assert.is(await client.ask('c', 'after the first restart'), '3 c');
    assert.not.ok(fs.readdirSync(path.join(ckpt, '1')).some((n) => n.startsWith('repair_frozen.')), 'the mark of generation 1 is used once');
    await checkpoint(ckpt);
    await killed(second, 2, true);
    const third = await restarted('restart 2');
    assert.is(await client.ask('d', 'after the second restart'), '4 d');
    await checkpoint(ckpt);
    assert.is(await client.ask('e', 'after the third checkpoint'), '5 e');
    await killed(third, 3, false);
  } finally {
    client?.end();
    await scope.cleanup();
  }
});

test('the audit login UID a process set (/proc/self/loginuid) comes back', async () => {
  await twiceThroughRestart('loginuid', exampleProgram('loginuid', ['--steps', '50']));
});

test('a process re-parented to a child subreaper in a session that subreaper is not in fails the checkpoint, naming both, and the program runs on', async () => {
  await refusedAndRunsOn('reparented', exampleProgram('reparented', ['--steps', '60']), 'ckrun reparented', /process \d+ is in session \d+, but its ancestor \d+ is in session \d+, which it does not lead.*cannot make this tree again/);
});

test('a pseudo-terminal master in packet mode (TIOCPKT) with bytes its slave wrote and it has not read keeps them, read as one data packet', async () => {
  await twiceThroughRestart('ptypacket', exampleProgram('ptypacket', ['--steps', '80']));
});

test.run();
