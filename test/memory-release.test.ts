// Memory the program releases after a restart behaves as the kernel
// promises for the memory it had: MADV_DONTNEED makes anonymous pages read
// as zero and private file pages read as the file again, MADV_FREE works on
// anonymous memory, and /proc/self/maps shows the program's own mappings
// (no image file). A restart that mapped saved pages from the image brought
// the checkpoint's bytes back into released memory, which allocators such
// as jemalloc hand out as zeroed. examples/release.c checks all of it at
// every step and prints FAIL at the first difference (spine: its lines
// must be an uninterrupted run's).
import { test } from 'uvu';
import { spine } from './lib/spine.js';

test('released memory reads as zero (anonymous) or as its file (private file mapping) after a restart, and maps shows no image: kill -9, restart, twice', async () => {
  await spine({
    name: 'memory-release',
    example: 'release',
    args: (dir) => ['--steps', '160', '--dir', dir],
    first: 10,
    // every chunk is released once within 64 steps of the restart
    second: 70,
  });
});

test.run();
