// The shape of src/: no module imports itself through others (static
// imports, `import type`, re-exports and dynamic import() all count), and
// the library (src/index.ts and everything it reaches) never imports the
// command line (src/cli.ts). The test harness (test/lib/) has no cycle
// either. The checker is tested on a made-up directory first, with a cycle
// through every kind of import.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ROOT } from './lib/paths.js';
import { describeCycles, importGraph, importPath, reachableFrom } from './lib/imports.js';

const SRC = path.join(ROOT, 'src');

function madeUp(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckrun-test-imports-'));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

test('the checker names a cycle made of any kind of import, and passes a tree', () => {
  const cyclic = madeUp({
    'a.ts': "import { b } from './b.js';\nexport const a = () => b;\n",
    'b.ts': "export async function b() { return (await import('./c.js')).c; }\n",
    'c.ts': "import type { D } from './d.js';\nexport const c: D = 1;\n",
    'd.ts': "export { a } from './a.js';\nexport type D = number;\n",
    'e.ts': "export type E = import('./e.js').F;\nexport type F = number;\n",
    'leaf.ts': "import { a } from './a.js';\nimport { readFileSync } from 'node:fs';\nexport const leaf = [a, readFileSync];\n",
  });
  const tree = madeUp({
    'top.ts': "import { mid } from './mid.js';\nimport type { Low } from './low.js';\nexport const top: Low = mid;\n",
    'mid.ts': "export const mid = (await import('./low.js')).low;\n",
    'low.ts': "export const low = 1;\nexport type Low = number;\n",
  });
  try {
    const found = describeCycles(importGraph(cyclic)).join('\n');
    assert.match(found, /4 modules in one cycle: a\.ts, b\.ts, c\.ts, d\.ts/);
    assert.match(found, /a\.ts → b\.ts → c\.ts → d\.ts → a\.ts/);
    assert.match(found, /1 module in one cycle: e\.ts\n +e\.ts → e\.ts/);
    assert.not.match(found, /leaf/);
    assert.equal(describeCycles(importGraph(tree)), []);
  } finally {
    fs.rmSync(cyclic, { recursive: true, force: true });
    fs.rmSync(tree, { recursive: true, force: true });
  }
});

test('src/ has no import cycles', () => {
  const cycles = describeCycles(importGraph(SRC));
  assert.ok(
    cycles.length === 0,
    `src/ has import cycles (every import counts, import type and import() too); move what both sides need into a module below them:\n${cycles.join('\n')}`,
  );
});

test('the test harness (test/lib/) has no import cycles', () => {
  const cycles = describeCycles(importGraph(path.join(ROOT, 'test', 'lib')));
  assert.ok(cycles.length === 0, `test/lib/ has import cycles:\n${cycles.join('\n')}`);
});

test('the library (src/index.ts) does not import the command line (src/cli.ts)', () => {
  const graph = importGraph(SRC);
  assert.ok(graph.has('index.ts') && graph.has('cli.ts'), `src/index.ts or src/cli.ts is missing: ${[...graph.keys()].join(' ')}`);
  const via = importPath(graph, 'index.ts', 'cli.ts');
  assert.ok(via === undefined, `the library imports the command line: ${via?.join(' → ')}`);
  // no module of the library imports it at all: only bin/ckrun.js does
  const importers = [...graph].filter(([, to]) => to.includes('cli.ts')).map(([from]) => from);
  assert.equal(importers, [], `these modules import src/cli.ts: ${importers.join(', ')}`);
  // and the command line uses the library
  assert.ok(reachableFrom(graph, 'cli.ts').has('session.ts'), 'src/cli.ts does not reach src/session.ts');
});

test.run();
