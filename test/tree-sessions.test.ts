// Process groups and sessions (issue 11): a session leader with children in
// its group, a child with a session of its own, and a process whose only
// child is a zombie (examples/sessions.c) — what servers, shells and job
// control arrange — and the corners zdtm found: a process below two that
// left its session by setsid after forking it, a zombie that led the
// session of a live process, a zombie in the group of a reaped leader. After each restart every process is in the session and
// group it was in (the program checks with getsid/getpgid, and kill(-pgid)
// reaches exactly its group), and the zombie is still there to be reaped.
// Also python's subprocess.Popen(start_new_session=True), and the whole
// of it with ckrun in a PID namespace whose session leader is outside (a
// container, a CI runner): every session ID there reads 0.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CKRUN_SH, EXAMPLES } from './lib/paths.js';
import { python3 } from './lib/examples.js';
import { runNative, type Proc } from './lib/proc.js';
import { Scope } from './lib/scope.js';
import { sessionByEnv, treeProgram, treeScenario, until } from './lib/tree.js';

/** [pid, pgid, sid] of every live process of the session, as they see themselves. */
function relations(ckpt: string): string[] {
  const last = (status: string, k: string): number => Number(/^\S+:\s*(.*)$/m.exec(status.split('\n').find((l) => l.startsWith(`${k}:`)) ?? '')?.[1]?.trim().split(/\s+/).pop());
  return sessionByEnv(ckpt)
    .map((pid) => {
      const st = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
      return `${last(st, 'NSpid')} ${last(st, 'NSpgid')} ${last(st, 'NSsid')}`;
    })
    .sort();
}

function steps(p: Proc): number {
  return p.lines.filter((l) => /^step \d+/.test(l)).length;
}

test('a session leader with its group, a child with a session of its own, a zombie only child, zombie leaders: kill -9, restart, twice (the second time in a new PID namespace)', async () => {
  const scope = new Scope('tree-sessions');
  try {
    const program = treeProgram('sessions', ['--steps', '150']);
    const ref = await runNative(program);
    assert.is(ref.code, 0, ref.stderr);
    const before: string[][] = [];
    await treeScenario(scope, {
      name: 'sessions',
      program,
      cwd: scope.dir('work'),
      minProcesses: 11,
      // the second restart in a fresh PID namespace, as when a PID of the family is taken (the suite's own
      // processes wrap this machine's 32768 PIDs): the orchestrator takes ckrun's PID, session and group there
      restartExtra: [[], ['--new-pid-namespace']],
      async progress({ proc, ckpt, stage }) {
        const from = steps(proc);
        await until(proc, () => steps(proc) >= from + 12, '12 more steps');
        // the first restart's processes (its orchestrator aside) against the launched run's
        const now = relations(ckpt);
        if (stage === 1) {
          const pids = new Set(before[0]!.map((r) => r.split(' ')[0]));
          assert.equal(now.filter((r) => pids.has(r.split(' ')[0])), before[0], 'after the restart, the same processes in the same groups and sessions');
        }
        before[stage] = now;
      },
      verify([s1, r1, r2]) {
        for (const p of [s1, r1, r2]) assert.not.ok(p.lines.some((l) => l.startsWith('FAIL')), p.describe(12));
        const all = [...s1.lines, ...r1.lines, ...r2.lines];
        assert.ok(all.filter((l) => / ok$/.test(l)).length >= 15, 'the group checks ran in every run');
        assert.is(r2.lines[r2.lines.length - 3], 'zombie exited with status 7', r2.describe());
        // a zombie that led the session of a live process, and one in the group of a reaped leader
        assert.is(r2.lines[r2.lines.length - 2], 'zombies K and Q exited with status 3 and 5', r2.describe());
        assert.is(r2.lines[r2.lines.length - 1], 'done');
        assert.equal(
          r2.lines.filter((l) => l.startsWith('step')).slice(-3),
          ref.lines.filter((l) => l.startsWith('step')).slice(-3),
          'it ends where an uninterrupted run ends',
        );
      },
    });
  } finally {
    await scope.cleanup();
  }
});

test('python subprocess.Popen(start_new_session=True): the child writes on through kill -9 and two restarts', async () => {
  const scope = new Scope('tree-popen');
  try {
    const work = scope.dir('work');
    const out = path.join(work, 'child.txt');
    const script = path.join(EXAMPLES, 'popen_session.py');
    await treeScenario(scope, {
      name: 'popen',
      program: [python3(), script, out, '400'],
      cwd: work,
      minProcesses: 2,
      async progress({ proc }) {
        const have = (): number => (fs.existsSync(out) ? fs.readFileSync(out, 'utf8').split('\n').length : 0);
        const from = have();
        await until(proc, () => have() >= from + 20, '20 more lines of the child');
      },
      verify([, , r2]) {
        assert.ok(r2.lines.includes('child exited 0'), r2.describe());
        const lines = fs.readFileSync(out, 'utf8').trim().split('\n');
        const nums = lines.map((l) => Number(/^line (\d+) sid (\d+) pid (\d+)$/.exec(l)?.[1]));
        // the file is put back to its size at each checkpoint: every line once
        assert.equal(nums, Array.from({ length: 400 }, (_, i) => i + 1), 'the child wrote every line once, in order');
        const ids = new Set(lines.map((l) => l.replace(/^line \d+ /, '')));
        assert.is(ids.size, 1, `the child kept its session and PID: ${[...ids].join(', ')}`);
        const [sid, pid] = [...ids][0]!.split(' ').filter((x) => /^\d+$/.test(x));
        assert.is(sid, pid, 'the child leads its own session');
      },
    });
  } finally {
    await scope.cleanup();
  }
});

// One launch, checkpoint, kill -9 and restart run by a shell that is in a
// group of its own in a fresh PID namespace, below its session's leader:
// getsid() says 0 for the whole family, a session like any other.
const OUTSIDE_LEADER = `set -u
D=$1; BIN=$2; CKRUN=$3
"$CKRUN" --dir "$D/ck" -- "$BIN" --steps 150 > "$D/out" 2>&1 &
ck=$!
for i in $(seq 1 600); do [ "$(grep -c '^step' "$D/out")" -ge 30 ] && break; sleep 0.1; done
"$CKRUN" checkpoint --dir "$D/ck" > /dev/null || { echo "the checkpoint failed"; exit 1; }
kill -9 $ck; wait $ck 2>/dev/null
for i in $(seq 1 200); do pgrep -f "$BIN" > /dev/null || break; sleep 0.05; done
"$CKRUN" restart --dir "$D/ck" > "$D/restart.out" 2>&1 || { echo "the restart exited $?: $(cat "$D/restart.out")"; exit 1; }
echo "sid $(ps -o sid= -p $$)"
`;

test('the same, with ckrun in a PID namespace whose session leader is outside it (session ID 0): kill -9, restart', async () => {
  const scope = new Scope('tree-sessions-outside');
  try {
    const [bin] = treeProgram('sessions');
    const refRun = runNative([bin!, '--steps', '150']);
    const dir = scope.dir('work');
    const script = path.join(dir, 'run.sh');
    fs.writeFileSync(script, OUTSIDE_LEADER);
    // PID 1 is a shell that waits; the script runs in a group of its own below it
    const inner = `import os; os.setpgid(0, 0); os.execvp("bash", ["bash", ${JSON.stringify(script)}, ${JSON.stringify(dir)}, ${JSON.stringify(bin)}, ${JSON.stringify(CKRUN_SH)}])`;
    const r = await promisify(execFile)('unshare', ['-pf', '--mount-proc', 'bash', '-c', `/usr/bin/python3 -c '${inner}'; true`], { timeout: 120_000 }).catch(
      (e: { stdout?: string; stderr?: string; message: string }) => ({ stdout: `${e.stdout ?? ''}`, stderr: `${e.stderr ?? ''}${e.message}` }),
    );
    assert.match(r.stdout, /^sid\s+0$/m, `the script did not finish, or not in session 0:\n${r.stdout}\n${r.stderr}`);
    const ref = await refRun;
    assert.is(ref.code, 0, ref.stderr);
    // the restarted program wrote on in the same file, from its offset at the checkpoint
    assert.is(fs.readFileSync(path.join(dir, 'out'), 'utf8'), ref.stdout, "the output is the uninterrupted run's, every group check ok");
  } finally {
    await scope.cleanup();
  }
});

test.run();
