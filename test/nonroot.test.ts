// Restart as an ordinary user: the PID can't be chosen in ckrun's own PID
// namespace without root, so restart goes through a user and PID namespace
// of its own. The program keeps its UID, has no capabilities afterwards,
// continues where it was, and can be checkpointed and restarted again.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { exampleProgram } from './lib/examples.js';
import { lastLine, stepOf } from './lib/lines.js';
import { imagesOf, readImage } from './lib/images.js';
import { runNative } from './lib/proc.js';
import { Scope } from './lib/scope.js';
import { asUserArgv, NOBODY, NOGROUP, sharedCkrun } from './lib/users.js';

function asNobody(script: string, timeoutMs = 60_000): string {
  const [cmd, ...args] = asUserArgv(NOBODY, NOGROUP, script);
  return execFileSync(cmd!, args, { encoding: 'utf8', timeout: timeoutMs });
}

test('an ordinary user restarts in a user namespace of their own, twice', async () => {
  if (process.geteuid?.() !== 0) throw new Error('this test runs ckrun as user nobody, which needs root: run npm test as root');
  const shared = sharedCkrun();
  const CKRUN = shared.ckrunJs;
  const args = exampleProgram('counter', ['--steps', '120']).slice(1);
  const program = path.join(shared.examples, 'counter');
  const scope = new Scope('nonroot');
  try {
    fs.chmodSync(scope.root, 0o755);
    const work = scope.dir('work');
    fs.chownSync(work, NOBODY, NOBODY);
    const ck = path.join(work, 'ck');
    const ref = await runNative([program!, ...args]);
    const cmd = [program, ...args].join(' ');
    // launch, checkpoint mid-work, kill -9, restart, checkpoint the
    // restarted process, kill -9, restart from that, run to the end; each
    // restart's output in its own file (--stdio=inherit: by default the
    // program would go on writing into the file it wrote at the checkpoint)
    const out = asNobody(
      `set -e; cd ${work}
      node ${CKRUN} --dir ${ck} -- ${cmd} > run1.txt 2>&1 & ck=$!
      while [ "$(cat run1.txt 2>/dev/null | grep -c '^step')" -lt 30 ]; do sleep 0.05; done
      node ${CKRUN} checkpoint --dir ${ck}
      kill -9 $ck; wait $ck 2>/dev/null || true   # the program dies with ckrun (parent-death signal)
      node ${CKRUN} restart --stdio=inherit --dir ${ck} > run2.txt 2>&1 & ck=$!
      while [ "$(cat run2.txt 2>/dev/null | grep -c '^step')" -lt 20 ]; do sleep 0.05; done
      prog=$(pgrep -n -x -u ${NOBODY} counter)   # other users' counters may run meanwhile
      grep -E '^(Uid|CapEff):' /proc/$prog/status
      node ${CKRUN} checkpoint --dir ${ck}
      kill -9 $ck; wait $ck 2>/dev/null || true   # and with it the namespace's init and everything in it
      node ${CKRUN} restart --stdio=inherit --dir ${ck} > run3.txt 2>&1`,
      120_000,
    );
    assert.match(out, new RegExp(`Uid:\\s+${NOBODY}\\s`), `the restored program should keep UID ${NOBODY}:\n${out}`);
    assert.match(out, /CapEff:\s+0+\n/, `the restored program should have no capabilities:\n${out}`);
    assert.match(out, /\/1\n[\s\S]*\/2\n/, `both checkpoints should be generations 1 and 2:\n${out}`);
    const run2 = fs.readFileSync(path.join(work, 'run2.txt'), 'utf8').split('\n').filter(Boolean);
    const run3 = fs.readFileSync(path.join(work, 'run3.txt'), 'utf8').split('\n').filter(Boolean);
    const first2 = run2.find((l) => stepOf(l) !== undefined);
    const first3 = run3.find((l) => stepOf(l) !== undefined);
    assert.ok(first2 && ref.lines.includes(first2) && stepOf(first2)! >= 30, `the first restart should continue, not start over:\n${run2.slice(0, 3).join('\n')}`);
    assert.ok(first3 && ref.lines.includes(first3) && stepOf(first3)! > stepOf(first2)!, `the second restart should continue after the first:\n${run3.slice(0, 3).join('\n')}`);
    assert.is(lastLine(run3), lastLine(ref.lines), 'the final state should be an uninterrupted run\'s');
    // without CAP_CHECKPOINT_RESTORE /proc/self/map_files does not answer: the
    // libraries are still known as the files they are, not stored in full
    for (const g of ['1', '2']) {
      const gen = path.join(ck, g);
      for (const f of imagesOf(gen)) {
        const regions = (readImage(f).meta['memory'] as { kind: string; name: string }[]) ?? [];
        const libc = regions.filter((r) => /\/libc\.so\.6$/.test(r.name));
        assert.ok(libc.length > 0, `generation ${g}, ${f}: libc is mapped`);
        assert.equal(libc.map((r) => r.kind).filter((k) => k !== 'file'), [], `generation ${g}, ${f}: libc's mappings are files, not stored in full: ${libc.map((r) => `${r.kind} ${r.name}`).join(', ')}`);
      }
    }
  } finally {
    await scope.cleanup();
  }
});

test.run();
