// pidfd (issue 4): a parent polls a pidfd of its child, and holds one of
// its grandchild, which holds one of it (zdtm pidfd_kill); across two
// restarts of the family the pidfd still names the child, turns readable
// when it exits, and waitpid gives its status. Pidfds of children that
// exited and were reaped come back dead (zdtm pidfd_dead).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { EXAMPLES } from './lib/paths.js';
import { Scope } from './lib/scope.js';
import { imagesOf, readImage } from './lib/images.js';
import { treeScenario } from './lib/tree.js';

test('pidfd of a child: polled across two restarts of the family; pidfds between a grandparent and its grandchild keep naming each other; readable when the child exits, its status reaped; pidfds of reaped children stay dead, one inode per process, with their flags', async () => {
  const scope = new Scope('events-pidfd');
  try {
    await treeScenario(scope, {
      name: 'pidfd',
      program: ['python3', path.join(EXAMPLES, 'ev-pidfd.py'), '40'],
      cwd: scope.dir('work'),
      minProcesses: 3,
      async progress({ proc }) {
        const start = proc.lines.length;
        await proc.waitFor(() => proc.lines.length >= start + 5, 'five more ticks');
      },
      checkGeneration(gen, m) {
        const parent = m.processes.find((p) => p.pid === m.root);
        assert.ok(parent, `${gen}: the root is in the generation`);
        const img = readImage(imagesOf(gen).find((f) => path.basename(f).startsWith(`${parent.pid}.`)) ?? '');
        const kinds = ((img.meta.files as { kind?: string }[] | undefined) ?? []).map((f) => f.kind);
        assert.ok(kinds.includes('pidfd'), `${gen}: the parent's image holds its pidfd (kinds: ${kinds.join(', ')})`);
      },
      verify([s1, r1, r2]) {
        const all = [...s1.lines, ...r1.lines, ...r2.lines];
        assert.is(r2.lines[r2.lines.length - 1], 'child exited 7', `the last restart reaps the child through its pidfd:\n${r2.describe()}`);
        assert.ok(!all.some((l) => /Error|Traceback|^FAIL/.test(l)), `no errors:\n${r2.describe()}`);
      },
    });
  } finally {
    await scope.cleanup();
  }
});

test.run();
