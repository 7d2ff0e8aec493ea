// A child that is not under the shim (statically linked: LD_PRELOAD has no
// effect on it) cannot be saved: the checkpoint fails and names it, the
// family runs on unharmed, and a checkpoint once it has gone succeeds. A
// statically linked program (or a script whose interpreter is one) given
// to ckrun itself is refused at once, without running it.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkpoint, ckrun } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';
import { generations } from './lib/images.js';
import { treeManifest } from './lib/tree.js';

test('a statically linked child fails the checkpoint with its PID, name and program; the family runs on; later checkpoints work', async () => {
  const scope = new Scope('tree-static');
  try {
    const dir = scope.dir('bin');
    const src = path.join(dir, 'nap.c');
    const nap = path.join(dir, 'nap');
    fs.writeFileSync(src, '#include <stdlib.h>\n#include <unistd.h>\nint main(int c, char **v) { sleep(c > 1 ? atoi(v[1]) : 5); return 0; }\n');
    try {
      execFileSync('gcc', ['-static', '-O2', '-o', nap, src], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      throw new Error(`cannot build a static test program (is libc6-dev installed?): ${(e as { stderr?: Buffer }).stderr?.toString() ?? String(e)}`);
    }
    const ckpt = scope.ckptDir();
    const p = scope.launch({
      dir: ckpt,
      program: ['/bin/bash', '-c', `echo start; ${nap} 6; echo after; sleep 3; echo end`],
      label: 'ckrun bash with a static child',
    });
    await p.waitForLine('start');
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    const r = await ckrun(['checkpoint', '--dir', ckpt]);
    assert.is(r.code, 1, r.describe());
    assert.match(
      r.stderr,
      new RegExp(`process \\d+ \\(nap, ${nap.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\) is not under ckrun's shim \\(statically linked, or started without LD_PRELOAD\\); it cannot be checkpointed`),
    );
    assert.ok(Date.now() - t0 < 10_000, 'the checkpoint gives up within seconds');
    assert.equal(generations(ckpt), [], 'a failed checkpoint leaves no generation');
    assert.equal(fs.readdirSync(ckpt).filter((f) => f.includes('partial')), [], 'and no partial one');
    assert.ok(p.running, `the family runs on\n${p.describe()}`);

    await p.waitForLine('after');
    const gen = await checkpoint(ckpt);
    const m = treeManifest(gen);
    assert.ok(m.processes.length >= 1, `${gen}: no process`);
    const exit = await p.waitExit();
    assert.is(exit.code, 0, p.describe());
    assert.equal(p.lines, ['start', 'after', 'end']);
  } finally {
    await scope.cleanup();
  }
});

test('a statically linked program, or a script whose interpreter is one, is refused at launch without running', async () => {
  const scope = new Scope('launch-static');
  try {
    const dir = scope.dir('bin');
    const src = path.join(dir, 'touch.c');
    const touch = path.join(dir, 'touch');
    fs.writeFileSync(src, '#include <fcntl.h>\n#include <unistd.h>\nint main(int c, char **v) { if (c > 1) close(open(v[1], O_CREAT | O_WRONLY, 0600)); return 0; }\n');
    try {
      execFileSync('gcc', ['-static', '-O2', '-o', touch, src], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      throw new Error(`cannot build a static test program (is libc6-dev installed?): ${(e as { stderr?: Buffer }).stderr?.toString() ?? String(e)}`);
    }
    const marker = path.join(dir, 'ran');
    const script = path.join(dir, 'script');
    fs.writeFileSync(script, `#!${touch} ${marker}\n`, { mode: 0o755 });
    const esc = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    for (const [program, why] of [
      [touch, `${esc(touch)} is statically linked`],
      [script, `its interpreter ${esc(touch)} is statically linked`],
    ] as const) {
      const ckpt = scope.ckptDir(`ckpt-${path.basename(program)}`);
      const r = await ckrun(['--dir', ckpt, '--', program, marker]);
      assert.is(r.code, 126, r.describe());
      assert.match(
        r.stderr,
        new RegExp(`^ckrun: the program ${esc(program)}: ${why}, so the shim is not in it and it cannot be checkpointed \\(ckrun checkpoints dynamically linked programs that keep LD_PRELOAD\\); ckrun does not run it\n$`),
      );
      assert.not.ok(fs.existsSync(marker), `${program} must not have run`);
      assert.equal(generations(ckpt), []);
    }
    // the same program runs under ckrun when a dynamically linked interpreter runs it (no shim needed for it to run at all)
    const ok = await ckrun(['--dir', scope.ckptDir('ckpt-sh'), '--', '/bin/sh', '-c', `exec ${touch} ${marker}`]);
    assert.is(ok.code, 0, ok.describe());
    assert.ok(fs.existsSync(marker), 'a static program started by a dynamically linked one still runs (and is refused only at a checkpoint)');
  } finally {
    await scope.cleanup();
  }
});

test.run();
