// Moving a program between two "hosts" on this machine (issue 14): two
// network namespaces joined by a veth pair whose addresses exist only
// inside them, each command run with its own mount namespace (`ip netns
// exec`) in which the program's directory is a bind mount of that host's
// own copy (other inodes and times: the target's program file, data file
// and libc are copies). A TCP server that counts its clients is moved with
// `ckrun migrate` from A to B (restored there in a PID namespace of its
// own, as on one machine the source holds the PIDs until it ends); it then
// answers on B's address with its count kept, no longer on A's, and maps
// B's copies.
import { execa } from 'execa';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { exampleProgram } from './lib/examples.js';
import { CKRUN, NODE } from './lib/paths.js';
import { Proc } from './lib/proc.js';
import { findProcesses } from './lib/processes.js';
import { Scope } from './lib/scope.js';

const LIBC = '/usr/lib/x86_64-linux-gnu/libc.so.6';
const PORT = 7070;
const tag = (process.pid % 10000).toString();
const [NS_A, NS_B] = [`ckhost${tag}a`, `ckhost${tag}b`];
const net = `10.231.${process.pid % 250}`;
const [ADDR_A, ADDR_B] = [`${net}.1`, `${net}.2`];

async function sh(cmd: string): Promise<void> {
  const r = await execa('sh', ['-c', cmd], { reject: false });
  if (r.exitCode !== 0) throw new Error(`${cmd}: status ${r.exitCode}: ${r.stderr}`);
}

async function makeHosts(): Promise<void> {
  await sh(
    `ip netns add ${NS_A} && ip netns add ${NS_B} && ip link add ckv${tag}a type veth peer name ckv${tag}b && ` +
      `ip link set ckv${tag}a netns ${NS_A} && ip link set ckv${tag}b netns ${NS_B} && ` +
      `ip -n ${NS_A} addr add ${ADDR_A}/24 dev ckv${tag}a && ip -n ${NS_B} addr add ${ADDR_B}/24 dev ckv${tag}b && ` +
      `ip -n ${NS_A} link set ckv${tag}a up && ip -n ${NS_B} link set ckv${tag}b up && ` +
      `ip -n ${NS_A} link set lo up && ip -n ${NS_B} link set lo up`,
  );
}

async function removeHosts(): Promise<void> {
  await execa('sh', ['-c', `ip netns del ${NS_A}; ip netns del ${NS_B}`], { reject: false });
}

/** What a client in host A reads from ADDR:PORT (bash's /dev/tcp), or null when it cannot connect. */
async function ask(addr: string): Promise<string | null> {
  const r = await execa('ip', ['netns', 'exec', NS_A, 'bash', '-c', `exec 3<>/dev/tcp/${addr}/${PORT} && cat <&3`], { reject: false, timeout: 10_000 });
  return r.exitCode === 0 ? r.stdout.trim() : null;
}

/** The host's own copy of the program and its data, bind-mounted at mnt for the command that follows. */
function mountHost(copy: string, mnt: string): string {
  return `mount --bind '${copy}' '${mnt}'`;
}

test('a TCP server moved with ckrun migrate between two network and mount namespaces answers on the target address, its count kept, mapping the target\'s copies', async () => {
  for (const need of ['ip', 'bash']) {
    const r = await execa('sh', ['-c', `command -v ${need}`], { reject: false });
    assert.is(r.exitCode, 0, `this test needs ${need} (iproute2, bash)`);
  }
  assert.ok(fs.existsSync(LIBC), `this test needs ${LIBC} (it bind-mounts a copy of it on the target)`);
  const scope = new Scope('hosts');
  await removeHosts();
  try {
    await makeHosts();
    const [hostA, hostB, mnt, libcCopy] = [scope.dir('hostA'), scope.dir('hostB'), scope.dir('mnt'), path.join(scope.root, 'libc.so.6')];
    const [dA, dB] = [scope.ckptDir('ckA'), scope.ckptDir('ckB')];
    const exe = exampleProgram('netcount')[0]!;
    fs.copyFileSync(exe, path.join(hostA, 'netcount'));
    fs.chmodSync(path.join(hostA, 'netcount'), 0o755);
    fs.writeFileSync(path.join(hostA, 'data'), `token ${process.pid}\n`);
    for (const f of ['netcount', 'data']) {
      fs.copyFileSync(path.join(hostA, f), path.join(hostB, f));
      fs.utimesSync(path.join(hostB, f), new Date('2020-01-01'), new Date('2020-01-01'));
    }
    fs.chmodSync(path.join(hostB, 'netcount'), 0o755);
    fs.copyFileSync(LIBC, libcCopy);

    const src = scope.track(
      new Proc('ip', ['netns', 'exec', NS_A, 'sh', '-c', `${mountHost(hostA, mnt)} && exec '${NODE}' '${CKRUN}' --dir '${dA}' -- '${mnt}/netcount' ${PORT} '${mnt}/data'`], { label: 'netcount on host A' }),
    );
    await src.waitForStep(5);
    assert.is(await ask(ADDR_A), 'count 1', src.describe());

    const target = `ip netns exec ${NS_B} sh -c "${mountHost(hostB, mnt)} && mount --bind '${libcCopy}' '${LIBC}' && exec '${NODE}' '${CKRUN}' restart - --dir '${dB}'"`;
    const m = scope.track(new Proc('ip', ['netns', 'exec', NS_A, NODE, CKRUN, 'migrate', '--dir', dA, '--to', target], { label: 'migrate A to B' }));
    const e = await src.waitExit();
    assert.is(e.signal ?? e.code, 137, `the source ckrun ends once its program runs on B\n${src.describe()}\n${m.describe()}`);
    await m.waitForStep(src.maxStep + 3);
    assert.match(m.stderr, /the program runs on the target and was ended here/, m.describe());
    const firstThere = m.lines.find((l) => l.startsWith('step '));
    assert.is(firstThere, `step ${src.maxStep + 1}`, 'it goes on with the step after the last one on A');
    assert.ok(!m.lines.some((l) => l.startsWith('FAIL')), m.describe());

    assert.is(await ask(ADDR_B), 'count 2', `B's address answers with the count kept\n${m.describe()}`);
    assert.is(await ask(ADDR_A), null, 'nothing listens on A any more');

    // on B it maps B's copies: the program file and libc of B's mount namespace
    const moved = findProcesses((p) => p.cmdline[0] === `${mnt}/netcount`);
    assert.is(moved.length, 1, `one netcount runs: ${JSON.stringify(moved)}`);
    const pid = moved[0]!.pid;
    const [nsB, nsOf] = [(await execa('ip', ['netns', 'exec', NS_B, 'readlink', '/proc/self/ns/net'])).stdout, fs.readlinkSync(`/proc/${pid}/ns/net`)];
    assert.is(nsOf, nsB, 'it runs in host B\'s network namespace');
    const maps = fs.readFileSync(`/proc/${pid}/maps`, 'utf8');
    const inodeOf = (file: string) => maps.split('\n').find((l) => l.endsWith(file))?.trim().split(/\s+/)[4];
    assert.is(inodeOf(`${mnt}/netcount`), String(fs.statSync(path.join(hostB, 'netcount')).ino), 'B\'s copy of the program is mapped');
    assert.is(inodeOf(LIBC), String(fs.statSync(libcCopy).ino), 'B\'s copy of libc is mapped');
    process.kill(pid, 'SIGKILL');
    await m.waitExit();
  } finally {
    await scope.cleanup();
    await removeHosts();
  }
});

test.run();
