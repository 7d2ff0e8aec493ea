// threads: 4 workers with a normal, an error-checking and a robust mutex and
// pthread_kill. Both checkpoints are taken while worker-1 holds the
// error-checking mutex (steps 3..165) and worker-2 the robust one (5..150).
import { test } from 'uvu';
import { spine, stepReachedBefore } from './lib/spine.js';

const HELD_UNTIL = 150; // worker-2 exits holding the robust mutex at step 150

test('threads: mutexes and pthread_kill keep working across checkpoint/restart, twice', async () => {
  await spine({
    name: 'threads',
    example: 'threads',
    first: 40,
    second: 90,
    triggers: ['signal', 'cli'],
    expectLines: [
      'errorcheck lock: 0',
      'robust lock: 0',
      'robust trylock while owner lives: EBUSY',
      'join robust owner: 0',
      'robust: EOWNERDEAD',
      'robust consistent: 0',
      'errorcheck foreign: trylock EBUSY unlock EPERM',
      'errorcheck unlock: 0',
      'worker-1 mask: SIGUSR2 blocked',
      'names: worker-0 worker-1 worker-3',
      'pthread_kill: 0 delivered 19',
      /^threads: done counter=180900000 sent=19 /,
    ],
    check({ stage, ref, resumedAt }) {
      const s = stepReachedBefore(ref.lines, resumedAt);
      if (s >= HELD_UNTIL)
        throw new Error(`checkpoint ${stage} was taken at step ${s}, after the mutexes were released: the test proves nothing (machine too slow?)`);
    },
  });
});

test.run();
