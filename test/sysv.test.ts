// SysV IPC (issue 13): a program per kind of object (examples/sysv.c: a
// shared memory segment attached and one that no process attaches; a
// semaphore set with SEM_UNDO and a process blocked in semop; a message
// queue with queued messages and a process blocked in msgrcv), run as root
// and as user nobody: launch, checkpoint mid-work, kill -9, restart at once
// (the killed session's objects are still there: no ipcrm), checkpoint the
// restarted program, kill -9, restart, run to the end. The program checks
// its objects at every step (key, id, owner, mode, contents, values,
// waiters, messages) and at its end (SEM_UNDO gives back what it must).
// And the attack: user nobody makes an object with the key a root
// session's image uses; the restart neither removes nor uses it.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Cbor } from './lib/cbor.js';
import { editMeta, resealManifest } from './lib/craft.js';
import { Scope } from './lib/scope.js';
import { asUser, NOBODY, NOGROUP, sharedCkrun } from './lib/users.js';

const STEPS = 200; // enough for two checkpoints on a loaded machine: the program must not end before them
type Kind = 'shm' | 'sem' | 'msg';
const IPCRM_FLAG: Record<Kind, string> = { shm: '-M', sem: '-S', msg: '-Q' };

/** A key no other test process uses: this process's PID and a number of its own. */
function keyFor(n: number): number {
  return (0x5c000000 | ((process.pid & 0xffff) << 8) | (n << 2)) >>> 0;
}

/** The objects of one kind in this IPC namespace: "key id perms cuid nattch" lines. */
function listObjects(kind: Kind): string[] {
  const lines = fs.readFileSync(`/proc/sysvipc/${kind}`, 'utf8').trim().split('\n').slice(1);
  return lines.map((l) => l.trim().split(/\s+/)).map((f) => {
    const cuid = kind === 'shm' ? f[9] : kind === 'sem' ? f[6] : f[9];
    return [Number(f[0]) >>> 0, f[1], f[2], cuid, kind === 'shm' ? f[6] : '-'].join(' ');
  });
}

function withKey(kind: Kind, key: number): string[] {
  return listObjects(kind).filter((l) => Number(l.split(' ')[0]) === key);
}

function removeKey(kind: Kind, key: number): void {
  spawnSync('ipcrm', [IPCRM_FLAG[kind], `0x${key.toString(16)}`], { stdio: 'ignore' });
}

async function runScript(script: string, uid: number | undefined): Promise<{ code: number | null; out: string }> {
  if (uid === undefined) {
    const r = spawnSync('bash', ['-c', script], { encoding: 'utf8', timeout: 120_000 });
    return { code: r.status, out: `${r.stdout}${r.stderr}` };
  }
  const r = await asUser(uid, NOGROUP, script, 120_000);
  return { code: r.code, out: `${r.stdout}${r.stderr}` };
}

/** The shell steps of the scenario; each run's output goes to runN.txt in work. */
function scenarioScript(work: string, ckrun: string, program: string, kind: Kind, key: number): string {
  return `set -e; cd ${work}
  steps() { grep -c '^step' "$1" 2>/dev/null || true; }
  await() { for i in $(seq 1 600); do [ "$(steps $1)" -ge $2 ] && return 0; grep -q '^error' $1 2>/dev/null && break; sleep 0.05; done
    echo "no $2 steps in $1:"; cat $1; exit 3; }
  ${ckrun} --dir ck -- ${program} ${kind} ${key} ${STEPS} > run1.txt 2>&1 & ck=$!
  await run1.txt 15
  ${ckrun} checkpoint --dir ck
  kill -9 $ck; wait $ck 2>/dev/null || true
  ${ckrun} restart --stdio=inherit --dir ck > run2.txt 2>&1 & ck=$!
  await run2.txt 8
  ${ckrun} checkpoint --dir ck
  kill -9 $ck; wait $ck 2>/dev/null || true
  set +e
  ${ckrun} restart --stdio=inherit --dir ck > run3.txt 2>&1
  echo "last restart: status $?"`;
}

function programLines(file: string): string[] {
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => /^(step|error|done)/.test(l));
}

function stepNumbers(lines: string[]): number[] {
  return lines.filter((l) => l.startsWith('step ')).map((l) => Number(l.split(' ')[1]));
}

function assertConsecutive(steps: number[], what: string): void {
  for (let i = 1; i < steps.length; i++) assert.is(steps[i], steps[i - 1]! + 1, `${what}: steps ${steps.join(' ')}`);
}

async function scenario(kind: Kind, uid: number | undefined, n: number): Promise<void> {
  if (process.geteuid?.() !== 0) throw new Error('this test runs ckrun as root and as user nobody: run npm test as root');
  const who = uid === undefined ? 'root' : `user ${uid}`;
  const shared = sharedCkrun();
  const program = path.join(shared.examples, 'sysv');
  const key = keyFor(n);
  const keys = kind === 'shm' ? [key, key + 1] : [key];
  const scope = new Scope(`sysv-${kind}`);
  try {
    fs.chmodSync(scope.root, 0o755);
    const work = scope.dir('work');
    if (uid !== undefined) fs.chownSync(work, uid, NOGROUP);
    const { code, out } = await runScript(scenarioScript(work, shared.ckrunSh, program, kind, key), uid);
    const files = ['run1.txt', 'run2.txt', 'run3.txt'].map((f) => path.join(work, f));
    const show = () => `${out}\n${files.map((f) => (fs.existsSync(f) ? `--- ${path.basename(f)}\n${fs.readFileSync(f, 'utf8')}` : '')).join('\n')}`;
    assert.is(code, 0, `${kind} as ${who}: the scenario failed:\n${show()}`);
    assert.match(out, /last restart: status 0\n/, `${kind} as ${who}: the last restart should run the program to its end:\n${show()}`);
    const [r1, r2, r3] = files.map(programLines) as [string[], string[], string[]];
    for (const [lines, name] of [[r1, 'run1'], [r2, 'run2'], [r3, 'run3']] as const)
      assert.not.ok(lines.some((l) => l.startsWith('error')), `${kind} as ${who}: ${name} reports an error:\n${show()}`);
    const [s1, s2, s3] = [r1, r2, r3].map(stepNumbers) as [number[], number[], number[]];
    assertConsecutive(s1, `${kind} as ${who}, run 1`);
    assertConsecutive(s2, `${kind} as ${who}, run 2`);
    assertConsecutive(s3, `${kind} as ${who}, run 3`);
    assert.is(s1[0], 1, `${kind} as ${who}: the first run starts at step 1`);
    assert.ok(s2[0]! > 15 && s2[0]! <= s1.at(-1)! + 1, `${kind} as ${who}: the first restart continues where the checkpoint was (steps ${s2[0]} after ${s1.at(-1)}):\n${show()}`);
    assert.ok(s3[0]! > s2[0]! + 7 && s3[0]! <= s2.at(-1)! + 1, `${kind} as ${who}: the second restart continues where the second checkpoint was:\n${show()}`);
    assert.is(s3.at(-1), STEPS, `${kind} as ${who}: the last run reaches the end`);
    assert.match(r3.at(-1)!, /^done: /, `${kind} as ${who}: the program's own final check:\n${show()}`);
    // the program removed its objects at its end; the killed runs' were replaced (or, as nobody, removed with the namespace)
    for (const k of keys) assert.equal(withKey(kind, k), [], `${kind} as ${who}: no object with key 0x${k.toString(16)} is left behind`);
  } finally {
    for (const k of keys) removeKey(kind, k);
    await scope.cleanup();
  }
}

let n = 0;
for (const kind of ['shm', 'sem', 'msg'] as const) {
  const i = n++;
  test(`sysv ${kind} as root: checkpoint, kill -9, restart without ipcrm; twice`, () => scenario(kind, undefined, 2 * i));
  test(`sysv ${kind} as user nobody (an IPC namespace of its own): checkpoint, kill -9, restart; twice`, () => scenario(kind, NOBODY, 2 * i + 1));
}

test('attack: user nobody makes a segment with the key of a root session\'s image; the restart neither removes nor uses it', async () => {
  if (process.geteuid?.() !== 0) throw new Error('this test runs ckrun as root and as user nobody: run npm test as root');
  const shared = sharedCkrun();
  const program = path.join(shared.examples, 'sysv');
  const key = keyFor(10);
  const scope = new Scope('sysv-attack');
  try {
    fs.chmodSync(scope.root, 0o755);
    const work = scope.dir('work');
    const hex = `0x${key.toString(16)}`;
    const { code, out } = await runScript(
      `set -e; cd ${work}
      ${shared.ckrunSh} --dir ck -- ${program} shm ${key} 100000 > run1.txt 2>&1 & ck=$!
      for i in $(seq 1 600); do [ "$(grep -c '^step' run1.txt)" -ge 10 ] && break; sleep 0.05; done
      ${shared.ckrunSh} checkpoint --dir ck
      kill -9 $ck; wait $ck 2>/dev/null || true
      # the stale segments go (an administrator's ipcrm, a reboot) once the killed program let go of them
      for i in $(seq 1 300); do [ -z "$(awk -v k=${key} '$1 == k && $7 != 0' /proc/sysvipc/shm)" ] && break; sleep 0.01; done
      ipcrm -M ${hex}; ipcrm -M 0x${(key + 1).toString(16)}`,
      undefined,
    );
    assert.is(code, 0, `the root session could not be set up:\n${out}`);
    const squat = await asUser(NOBODY, NOGROUP, `${program} squat shm ${key}`);
    assert.is(squat.code, 0, `user nobody could not make a segment with key ${hex}:\n${squat.stdout}${squat.stderr}`);
    const squatId = squat.stdout.trim();
    const before = listObjects('shm').sort();
    const mine = withKey('shm', key);
    assert.equal(mine, [`${key} ${squatId} 600 ${NOBODY} 0`], `nobody's segment: ${JSON.stringify(mine)}`);
    const r = spawnSync(shared.ckrunSh, ['restart', '--dir', path.join(work, 'ck')], { cwd: work, encoding: 'utf8', timeout: 60_000 });
    const said = `${r.stdout}${r.stderr}`;
    assert.is.not(r.status, 0, `the restart should refuse:\n${said}`);
    assert.match(
      said,
      new RegExp(`the SysV shared memory segment with key ${hex} \\(id ${squatId}\\) exists, created by user ${NOBODY}, and is not the one this session left .*ckrun neither removes nor uses it`),
      `the refusal names the segment, its creator and what to do:\n${said}`,
    );
    assert.equal(listObjects('shm').sort(), before, 'no segment was removed, made or attached by the refused restart');
    assert.not.match(said, /^step/m, `the program must not run:\n${said}`);
  } finally {
    removeKey('shm', key);
    removeKey('shm', key + 1);
    await scope.cleanup();
  }
});

test('a restart that fails after it made the objects leaves none behind', async () => {
  if (process.geteuid?.() !== 0) throw new Error('this test runs ckrun as root: run npm test as root');
  const shared = sharedCkrun();
  const program = path.join(shared.examples, 'sysv');
  const key = keyFor(12);
  const scope = new Scope('sysv-failed');
  try {
    const work = scope.dir('work');
    const { code, out } = await runScript(
      `set -e; cd ${work}
      ${shared.ckrunSh} --dir ck -- ${program} sem ${key} 100000 > run1.txt 2>&1 & ck=$!
      for i in $(seq 1 600); do [ "$(grep -c '^step' run1.txt)" -ge 10 ] && break; sleep 0.05; done
      ${shared.ckrunSh} checkpoint --dir ck
      kill -9 $ck; wait $ck 2>/dev/null || true`,
      undefined,
    );
    assert.is(code, 0, `the session could not be set up:\n${out}`);
    // the holder's adjustment of semaphore 2 made too large to give back (its value is 100 + steps)
    const gen = path.join(work, 'ck', '1');
    let edited = 0;
    for (const f of fs.readdirSync(gen).filter((x) => x.endsWith('.ckpt')))
      editMeta(path.join(gen, f), (m) => {
        const undo = (m['sysv'] as { undo?: Cbor[][] } | undefined)?.undo ?? [];
        for (const u of undo)
          if (Number(u[1]) === 2) {
            u[2] = 32700;
            edited++;
          }
      });
    resealManifest(gen);
    assert.is(edited, 1, 'the holder\'s image has its adjustment of semaphore 2');
    const r = spawnSync(shared.ckrunSh, ['restart', '--dir', path.join(work, 'ck')], { cwd: work, encoding: 'utf8', timeout: 60_000 });
    const said = `${r.stdout}${r.stderr}`;
    assert.is.not(r.status, 0, `the restart should fail:\n${said}`);
    assert.match(said, /cannot give process \d+ its SEM_UNDO adjustment 32700 of semaphore 2 of the SysV semaphore set \d+ again: Numerical result out of range/, said);
    assert.not.match(said, /^step/m, `the program must not run:\n${said}`);
    assert.equal(withKey('sem', key), [], `the set the restart made (and the killed session's, which it replaced) is gone:\n${said}`);
  } finally {
    removeKey('sem', key);
    await scope.cleanup();
  }
});

test.run();
