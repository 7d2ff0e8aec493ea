// A daemonizing program (issue 3): double fork + setsid; the program ckrun
// started exits at once and the daemon, re-parented to ckrun, keeps
// writing numbered lines to a file. The session lasts while the daemon
// lives; after checkpoints, kill -9 and restarts the file must hold every
// line exactly once, in order.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runNative, sleep } from './lib/proc.js';
import { Scope } from './lib/scope.js';
import { fileLines, treeProgram, treeScenario, until } from './lib/tree.js';

const LINES = 200;

async function waitForFile(file: string, pred: (lines: string[]) => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred(fileLines(file))) {
    if (Date.now() > end) throw new Error(`waited ${timeoutMs / 1000} s for ${what}; ${file} has ${fileLines(file).length} lines`);
    await sleep(50);
  }
}

test('daemon: double fork + setsid, the session outlives the program ckrun started; checkpoint, kill -9, restart; twice; every line once', async () => {
  const scope = new Scope('tree-daemon');
  try {
    const refDir = scope.dir('ref');
    const work = scope.dir('work');
    const refOut = path.join(refDir, 'out.txt');
    const out = path.join(work, 'out.txt');
    const launcher = await runNative(treeProgram('daemon', [refOut]));
    assert.is(launcher.code, 0, launcher.stderr);
    await waitForFile(refOut, (l) => l.length === LINES + 1, 'the uninterrupted daemon to finish', 90_000);
    const ref = fileLines(refOut);
    assert.match(ref[ref.length - 1]!, new RegExp(`^done ${LINES} `));
    assert.ok(ref.slice(0, LINES).every((l) => / sid=kept$/.test(l)), 'the daemon keeps the session its middle process made');

    let seen = 0;
    let daemonPid = 0;
    await treeScenario(scope, {
      name: 'daemon',
      program: treeProgram('daemon', [out]),
      cwd: work,
      minProcesses: 1,
      async progress({ stage, proc }) {
        if (stage === 0) {
          await proc.waitForLine('daemon: detached');
          await sleep(300);
          assert.ok(proc.running, `ckrun must go on while the daemon lives (the program it started has exited)\n${proc.describe()}`);
        }
        const from = fileLines(out).length;
        await until(proc, () => fileLines(out).length >= from + 40, `40 more lines in ${out}`);
        seen = fileLines(out).length;
      },
      checkGeneration(gen, m, stage) {
        assert.is(m.processes.length, 1, `${gen}: only the daemon is left: ${JSON.stringify(m.processes)}`);
        const d = m.processes[0]!;
        assert.is.not(d.pid, m.root, `${gen}: the daemon is not the program ckrun started`);
        if (stage === 0) daemonPid = d.pid;
        else assert.is(d.pid, daemonPid, `${gen}: the restarted daemon has its PID`);
        assert.is.not(d.sid, d.pid, `${gen}: the daemon is not a session leader (double fork)`);
      },
      async runsOn() {
        await waitForFile(out, (l) => l.length > seen, 'the daemon to write on after the checkpoint');
      },
      verify([s1]) {
        assert.equal(s1.lines, [`daemon: start lines=${LINES}`, 'daemon: detached']);
        const got = fileLines(out);
        assert.is(got.length, ref.length, `${out} has ${got.length} lines, the uninterrupted run wrote ${ref.length}`);
        for (let i = 0; i < ref.length; i++)
          if (got[i] !== ref[i]) assert.unreachable(`line ${i + 1} of ${out} is ${JSON.stringify(got[i])}, expected ${JSON.stringify(ref[i])}`);
        assert.ok(fs.readFileSync(out).equals(fs.readFileSync(refOut)));
      },
    });
  } finally {
    await scope.cleanup();
  }
});

test.run();
