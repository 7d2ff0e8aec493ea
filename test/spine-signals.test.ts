// signals: handlers (SIGUSR1 on an alternate stack, SIGUSR2 with SA_SIGINFO),
// an ITIMER_VIRTUAL interval timer pacing the work, an alarm set at step 20
// that is still pending at both checkpoints and fires after them, and
// SIGUSR2 blocked and pending from step 30 to step 150.
import { test } from 'uvu';
import { imagesOf, readImage } from './lib/images.js';
import { spine, stepReachedBefore } from './lib/spine.js';
import * as path from 'node:path';

const UNBLOCK = 150;

test('signals: dispositions, timers, pending alarm and pending signal survive checkpoint/restart, twice', async () => {
  await spine({
    name: 'signals',
    example: 'signals',
    first: 40,
    second: 100,
    triggers: ['signal', 'signal'],
    expectLines: [
      'alarm set: previous 0',
      'usr2 blocked and sent: delivered 4',
      'usr2 pending before unblock: 1, delivered on unblock: 1',
      'vtimer interval: 2000 us',
      'alarm: fired 1',
      'usr1: 60 onstack 60',
      'usr2: 12 from user 12',
      'vtalrm: ok',
      'dispositions: usr1 ok usr2 ok int ignored',
      'altstack: ok',
      /^signals: done blocked=0 alarm=1 usr1=60 usr2=12 /,
    ],
    check({ stage, ref, resumedAt, ckpt }) {
      const s = stepReachedBefore(ref.lines, resumedAt);
      if (s >= UNBLOCK)
        throw new Error(`checkpoint ${stage} was taken at step ${s}, after SIGUSR2 was unblocked: the test proves nothing (machine too slow?)`);
      // what the image says about the pending signal and the timers
      const img = readImage(imagesOf(path.join(ckpt, String(stage)))[0]);
      const sig = img.meta.signals as { pending?: number | bigint; itimers?: unknown[][] } | undefined;
      const pending = BigInt((sig?.pending as number | bigint | undefined) ?? 0);
      const threadPending = ((img.meta.threads as { pending?: number | bigint }[] | undefined) ?? []).reduce(
        (m, t) => m | BigInt(t.pending ?? 0),
        0n,
      );
      if (!((pending | threadPending) & (1n << 11n)))
        throw new Error(`image of checkpoint ${stage}: SIGUSR2 is not recorded as pending (signals.pending=${pending}, threads' pending=${threadPending})`);
      const it = sig?.itimers;
      if (!Array.isArray(it) || it.length < 2) throw new Error(`image of checkpoint ${stage}: no itimers (${JSON.stringify(sig)})`);
      if (Number(it[1][0]) !== 2000) throw new Error(`image of checkpoint ${stage}: ITIMER_VIRTUAL interval is ${it[1][0]} us, not 2000`);
      // 2 s after step 20 the alarm is certainly still pending at step ~40
      const alarmLeft = Number(it[0][1]);
      if (stage === 1 && !(alarmLeft > 0))
        throw new Error(`image of checkpoint ${stage}: the alarm is not pending (ITIMER_REAL ${JSON.stringify(it[0])})`);
    },
  });
});

test.run();
