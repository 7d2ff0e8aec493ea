// Event descriptors and POSIX timers (issue 4): one program per kind
// (examples/ev-*.c) checks its own state after each restart and prints
// "FAIL: ..." if anything is off; the spine compares its output with an
// uninterrupted run (launch, checkpoint, kill -9, restart, verify, and
// again from the restarted process). The tests add what the image says.
import { test } from 'uvu';
import * as path from 'node:path';
import { type Cbor } from './lib/cbor.js';
import { imagesOf, readImage } from './lib/images.js';
import { type StageContext, spine } from './lib/spine.js';

type Entry = { [k: string]: Cbor };

function filesOf(ctx: StageContext): Entry[] {
  const img = readImage(imagesOf(path.join(ctx.ckpt, String(ctx.stage)))[0]);
  return (img.meta.files as Entry[] | undefined) ?? [];
}

function signalsOf(ctx: StageContext): Entry {
  const img = readImage(imagesOf(path.join(ctx.ckpt, String(ctx.stage)))[0]);
  return (img.meta.signals as Entry | undefined) ?? {};
}

function noFailure(ctx: StageContext): void {
  const bad = ctx.proc.lines.find((l) => l.startsWith('FAIL') || l.startsWith('error'));
  if (bad) throw new Error(`stage ${ctx.stage}: the program says: ${bad}\n${ctx.proc.describe(20)}`);
}

test('timerfd: interval, remaining time, unread expirations and an absolute wall-clock deadline survive, twice', async () => {
  await spine({
    name: 'ev-timerfd',
    example: 'ev-timerfd',
    first: 20,
    second: 60,
    expectLines: ['once: fired 1', 'unread: 1 expiration kept', 'wall: fired yes', 'ev-timerfd: done'],
    check(ctx) {
      noFailure(ctx);
      const tfds = filesOf(ctx).filter((f) => f.kind === 'timerfd');
      if (tfds.length !== 4) throw new Error(`image ${ctx.stage}: ${tfds.length} timerfds, expected 4`);
      const tick = tfds.find((f) => Number((f.timerfd as Entry).interval_ns) === 20_000_000);
      if (!tick) throw new Error(`image ${ctx.stage}: no timerfd with a 20 ms interval: ${JSON.stringify(tfds.map((f) => f.timerfd), (_k, v) => (typeof v === 'bigint' ? Number(v) : v))}`);
      const unread = tfds.find((f) => Number((f.timerfd as Entry).clock) === 7);
      if (!unread || Number((unread.timerfd as Entry).ticks) !== 1)
        throw new Error(`image ${ctx.stage}: the CLOCK_BOOTTIME timerfd does not keep its unread expiration`);
    },
  });
});

test('signalfd: its mask (without ckrun\'s signal) survives and signals sent after the restart are read, twice', async () => {
  await spine({
    name: 'ev-signalfd',
    example: 'ev-signalfd',
    first: 20,
    second: 60,
    expectLines: ['received: usr1 80 rt 80', 'ev-signalfd: done'],
    check(ctx) {
      noFailure(ctx);
      const s = filesOf(ctx).find((f) => f.kind === 'signalfd');
      const mask = BigInt((s?.signalfd as Entry | undefined)?.mask as number | bigint);
      const want = (1n << 9n) | (1n << 35n); // SIGUSR1, SIGRTMIN+2 (36)
      if (mask !== want) throw new Error(`image ${ctx.stage}: signalfd mask ${mask.toString(16)}, expected ${want.toString(16)}`);
    },
  });
});

test('inotify: a watch on a file deleted while the program keeps it open goes on that file (zdtm inotify00), twice', async () => {
  await spine({
    name: 'ev-inodel',
    example: 'ev-inodel',
    args: (d) => [d, '--steps', '90'],
    first: 15,
    second: 25,
    check(ctx) {
      noFailure(ctx);
      const i = filesOf(ctx).find((f) => f.kind === 'inotify');
      const watches = ((i?.inotify as Entry | undefined)?.watches as Cbor[][] | undefined) ?? [];
      if (watches.length !== 1 || watches[0]!.length !== 5 || watches[0]![2] !== '')
        throw new Error(`image ${ctx.stage}: the watch should be saved by its inode: ${JSON.stringify(watches, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`);
    },
  });
});

test('inotify: watches come back with the same numbers (a gap included) and report new events, twice', async () => {
  await spine({
    name: 'ev-inotify',
    example: 'ev-inotify',
    first: 20,
    second: 130,
    expectLines: ['watches: a 1 b 2 c 3 file 4', 'new watch on ino-d: 5', 'ev-inotify: done'],
    check(ctx) {
      noFailure(ctx);
      const i = filesOf(ctx).find((f) => f.kind === 'inotify');
      const watches = ((i?.inotify as Entry | undefined)?.watches as Cbor[][] | undefined) ?? [];
      const wds = watches.map((w) => Number(w[0])).sort();
      const want = ctx.stage === 1 ? '2,3,4' : '2,3,4,5';
      if (wds.join() !== want) throw new Error(`image ${ctx.stage}: watches ${wds.join()}, expected ${want}`);
      for (const w of watches)
        if (!String(w[2]).startsWith(ctx.work)) throw new Error(`image ${ctx.stage}: watch ${w[0]} on ${w[2]}, not under ${ctx.work}`);
    },
  });
});

test('POSIX timers: SIGEV_SIGNAL, SIGEV_THREAD_ID and SIGEV_NONE keep their IDs and keep firing, twice', async () => {
  await spine({
    name: 'ev-ptimer',
    example: 'ev-ptimer',
    first: 20,
    second: 60,
    expectLines: ['timer ids: sig 0 thread 2', 'ev-ptimer: done'],
    check(ctx) {
      noFailure(ctx);
      const timers = (signalsOf(ctx).timers as Entry[] | undefined) ?? [];
      const ids = timers.map((t) => Number(t.id)).sort();
      if (ids.join() !== '0,2,3') throw new Error(`image ${ctx.stage}: timer IDs ${ids.join()}, expected 0,2,3`);
      const thr = timers.find((t) => t.notify === 'thread_id');
      if (!thr || Number(thr.interval_ns) !== 30_000_000) throw new Error(`image ${ctx.stage}: no SIGEV_THREAD_ID timer of 30 ms`);
    },
  });
});

test('epoll and eventfd: level, edge and one-shot readiness, entries added under numbers since closed or reused, 1000 entries, and eventfd counters survive, twice', async () => {
  await spine({
    name: 'ev-epoll',
    example: 'ev-epoll',
    first: 20,
    second: 60,
    expectLines: ['one-shot re-armed and reported', 'ev-epoll: done'],
    check(ctx) {
      noFailure(ctx);
      const lists = filesOf(ctx)
        .filter((f) => f.kind === 'epoll')
        .map((f) => (f.epoll as Cbor[][] | undefined) ?? []);
      const sizes = lists.map((l) => l.length).sort((a, b) => a - b);
      if (sizes.join() !== '6,1000') throw new Error(`image ${ctx.stage}: epoll interest lists of ${sizes.join(', ')} entries, expected 6 and 1000`);
      // pipe A added as 40 (closed since) and pipe C added as 41 (now an eventfd): each saved with the descriptor that holds it
      const moved = lists.flat().filter((e) => e.length === 4).length;
      if (moved !== 2) throw new Error(`image ${ctx.stage}: ${moved} entries whose number no longer refers to their file, expected 2`);
    },
  });
});

// glibc's SIGEV_THREAD timers and AIO threads: test/helper-threads.test.ts

test.run();
