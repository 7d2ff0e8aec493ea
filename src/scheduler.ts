// When a session takes its checkpoints: on request (`ckrun checkpoint`,
// Session.checkpoint()), on the trigger signal (default SIGUSR2) and every
// --interval seconds. One runs at a time; the requests that come while one
// runs share the one that follows it.
import { watchSignal } from './native.js';
import { signalName } from './signals.js';

export class CheckpointScheduler<R> {
  private running: Promise<R> | undefined;
  /** The checkpoint that follows the running one, for requests that came while it ran. */
  private queued: Promise<R> | undefined;
  private stopSignals: (() => void)[] = [];
  private intervalTimer: NodeJS.Timeout | undefined;
  private interval: number | undefined;
  private stopped = false;

  constructor(
    /** Takes one checkpoint (and logs its failure). */
    private readonly take: () => Promise<R>,
    private readonly verbose: (line: string) => void,
  ) {}

  /** Whether a checkpoint is running. */
  get busy(): boolean {
    return this.running !== undefined;
  }

  /** Takes a checkpoint now (joins one already running). */
  checkpoint(): Promise<R> {
    if (this.running) {
      // The running checkpoint stopped the program before this request came:
      // one more follows it, shared by every request that arrives meanwhile.
      this.queued ??= this.running
        .catch(() => undefined)
        .then(() => {
          this.queued = undefined;
          return this.checkpoint();
        });
      return this.queued;
    }
    const run = this.take();
    this.running = run;
    const clear = (): void => {
      if (this.running === run) this.running = undefined;
    };
    run.then(clear, clear);
    return run;
  }

  /**
   * Runs `fn` (a checkpoint held until its caller lets the program go)
   * alone: after the running and queued checkpoints, and nothing else
   * starts until `fn`'s promise `busyUntil` settles.
   */
  async exclusive<T>(fn: () => Promise<{ value: T; busyUntil: Promise<unknown> }>): Promise<T> {
    while (this.running || this.queued) await Promise.allSettled([this.running, this.queued]);
    let settle!: () => void;
    const run = new Promise<R>((res) => {
      settle = () => res(undefined as R); // nobody shares this one: its value is never read
    });
    this.running = run;
    run.then(() => {
      if (this.running === run) this.running = undefined;
    });
    try {
      const { value, busyUntil } = await fn();
      busyUntil.then(settle, settle);
      return value;
    } catch (e) {
      settle();
      throw e;
    }
  }

  /** Takes a checkpoint whenever ckrun receives `trigger`, until stop(). */
  onSignal(trigger: number): void {
    this.stopSignals.push(
      watchSignal(trigger, () => {
        this.verbose(`${signalName(trigger)} received: taking a checkpoint`);
        this.checkpoint().catch(() => undefined); // failures are logged by take()
      }),
    );
  }

  /** Takes a checkpoint `secs` seconds from now, and again `secs` seconds after each, until stop(); undefined: never. */
  every(secs: number | undefined): void {
    this.interval = secs;
    this.scheduleInterval();
  }

  private scheduleInterval(): void {
    const secs = this.interval;
    if (secs === undefined || this.stopped) return;
    this.intervalTimer = setTimeout(() => {
      this.intervalTimer = undefined;
      this.checkpoint()
        .catch(() => undefined)
        .finally(() => this.scheduleInterval());
    }, secs * 1000);
    this.intervalTimer.unref();
  }

  /** No more checkpoints every --interval (signals and requests are still taken). */
  stopInterval(): void {
    this.interval = undefined;
    if (this.intervalTimer) clearTimeout(this.intervalTimer);
    this.intervalTimer = undefined;
  }

  /** No more checkpoints by signal or interval (requests are still taken). */
  stop(): void {
    this.stopped = true;
    if (this.intervalTimer) clearTimeout(this.intervalTimer);
    this.intervalTimer = undefined;
    for (const stop of this.stopSignals) stop();
    this.stopSignals = [];
  }

  /** Resolves once the running checkpoint, if any, has ended. */
  async idle(): Promise<void> {
    if (this.running) await this.running.catch(() => undefined);
  }
}
