// node running examples/timer.js: a multi-threaded runtime (V8 and libuv
// threads) with epoll, eventfd and pipes. If ckrun does not support those
// descriptors yet (issue 4), this test fails and says where.
import { test } from 'uvu';
import { spine } from './lib/spine.js';

test('node timer.js: timers and state survive checkpoint/restart, twice', async () => {
  await spine({
    name: 'node',
    example: 'timer.js',
    first: 40,
    second: 100,
    triggers: ['signal', 'cli'],
    expectLines: [/^timer\.js: done steps=200 timeouts=8 promises=5 digest=[0-9a-f]{64}$/],
  });
});

test.run();
