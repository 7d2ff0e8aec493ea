// counter: 64 MiB of memory filled as it goes, a growing heap and stack.
// Checkpoint with `ckrun checkpoint`, then with kill -USR2.
import { test } from 'uvu';
import { spine } from './spine.js';

test('counter: checkpoint, kill -9, restart; again; memory, heap and stack survive', async () => {
  await spine({
    name: 'counter',
    example: 'counter',
    first: 40,
    second: 100,
    triggers: ['cli', 'signal'],
    expectLines: [/^counter: done steps=200 nodes=200 /],
  });
});

test.run();
