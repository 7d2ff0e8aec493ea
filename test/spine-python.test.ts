// python3 running examples/loop.py: interpreter state (dict, list, random
// generator) survives checkpoint/restart, twice.
import { test } from 'uvu';
import { spine } from './lib/spine.js';

test('python3 loop.py: state survives checkpoint/restart, twice', async () => {
  await spine({
    name: 'python',
    example: 'loop.py',
    first: 40,
    second: 100,
    triggers: ['cli', 'signal'],
    expectLines: [/^loop\.py: done steps=200 total=\d+ keys=\d+ digest=[0-9a-f]{64}$/],
  });
});

test.run();
