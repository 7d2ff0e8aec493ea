// bench/RESULTS.md: the tables a reader wants, from the summarized results.
import type { Environment } from './environment.js';
import type { ForeignUse } from './monitor.js';
import type { Summary } from './stats.js';
import { FRONT_SPANS, RESTART_SPANS, type CompressSummary, type ImageSummary, type MemorySummary, type OpSummary, type StartupSummary, type Target } from './summary.js';

export interface ReportInput {
  quick: boolean;
  startedAt: string;
  durationS: number;
  environment: Environment;
  ckrunStartup: { warm: Summary | null; cold: Summary | null };
  memory: MemorySummary[];
  images: ImageSummary[];
  overhead: OpSummary[];
  startup: StartupSummary[];
  targets: Target[];
  failures: string[];
  /** `ckrun --help` mentions --compress. */
  hasCompress: boolean;
  compress: CompressSummary[];
}

const NA = '—';

export function ms(ns: number): string {
  const v = ns / 1e6;
  return `${v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)} ms`;
}

function nsOp(ns: number): string {
  return ns < 1000 ? `${ns.toFixed(ns < 100 ? 1 : 0)} ns` : `${(ns / 1000).toFixed(ns < 1e4 ? 2 : 1)} µs`;
}

export function mib(bytes: number | null): string {
  if (bytes === null) return NA;
  return bytes < 1048576 ? `${(bytes / 1024).toFixed(0)} KiB` : `${(bytes / 1048576).toFixed(bytes < 10 * 1048576 ? 2 : 1)} MiB`;
}

/** "median (min–max)" */
function spread(s: Summary | null, f: (v: number) => string = ms): string {
  if (!s) return NA;
  return s.n === 1 ? `${f(s.median)} (n=1)` : `${f(s.median)} (${f(s.min)}–${f(s.max)})`;
}

/** Gaps under 100 µs are not reported by the program: 0 means < 0.1 ms. */
function gapMs(ns: number): string {
  return ns === 0 ? '< 0.1 ms' : ms(ns);
}

function x(v: number): string {
  return `${v.toFixed(2)}×`;
}

function sizeName(m: number): string {
  return m >= 1024 ? `${m / 1024} GiB` : `${m} MiB`;
}

function table(head: string[], rows: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n') + '\n';
}

function targetsSection(t: Target[], hasCompress: boolean, compress: CompressSummary[], memory: MemorySummary[]): string {
  const mark = (s: Target['status']): string => (s === 'pass' ? '✅ pass' : s === 'FAIL' ? '❌ FAIL' : '⚪ not measured');
  return `## Targets of issue 5\n\nMedians of this run; min–max in parentheses.\n\n${table(
    ['what', 'target', 'measured', ''],
    t.map((r) => [r.what, r.target, r.measured, mark(r.status)]),
  )}\n${
    !hasCompress
      ? 'Not measured: `--compress` (optional compression), which ckrun does not have yet.'
      : compress.length === 0
        ? '`--compress` was not measured (see failures).'
        : compressHeadline(compress, memory)
  }\n`;
}

/** The largest size's --compress numbers against the uncompressed ones, in a sentence per kind of data. */
function compressHeadline(c: CompressSummary[], memory: MemorySummary[]): string {
  const top = Math.max(...c.map((r) => r.mib));
  const parts: string[] = [];
  for (const data of ['random', 'text'] as const) {
    const z = c.find((r) => r.mib === top && r.data === data && r.compress);
    const plain = plainOf(c, memory, top, data);
    if (!z || !plain) continue;
    const what = data === 'random' ? 'random data (does not compress; stored as it is)' : 'log-like text';
    const ratio = (a: Summary | null, b: Summary | null): string => (a && b ? x(a.median / b.median) : NA);
    parts.push(
      `- ${sizeName(top)} of ${what}: image ${mib(z.imageBytes)} = ${z.imageBytes && plain.imageBytes ? `${((100 * z.imageBytes) / plain.imageBytes).toFixed(1)}%` : NA} of the uncompressed one; ` +
        `checkpoint ${spread(z.checkpoint)} = ${ratio(z.checkpoint, plain.checkpoint)} the uncompressed; restart ${spread(z.restartWarm)} = ${ratio(z.restartWarm, plain.restartWarm)} the uncompressed`,
    );
  }
  return `\`--compress\` (no target; measured beside the uncompressed numbers, see Compression below):\n\n${parts.join('\n')}\n`;
}

/** The uncompressed numbers of the same size and data: random data from the memory suite. */
function plainOf(
  c: CompressSummary[],
  memory: MemorySummary[],
  size: number,
  data: 'random' | 'text',
): { imageBytes: number | null; checkpoint: Summary | null; restartWarm: Summary | null; pauseAtStop: Summary | null; rssBytes: number | null } | undefined {
  if (data === 'text') return c.find((r) => r.mib === size && r.data === 'text' && !r.compress);
  const m = memory.find((r) => r.mib === size);
  return m && { imageBytes: m.imageBytes, checkpoint: m.checkpoint, restartWarm: m.restartWarm, pauseAtStop: m.pauseAtStop, rssBytes: m.rssBytes };
}

function compressSection(c: CompressSummary[], memory: MemorySummary[]): string {
  if (c.length === 0) return '';
  const rows: string[][] = [];
  for (const size of [...new Set(c.map((r) => r.mib))].sort((a, b) => a - b))
    for (const data of ['random', 'text'] as const) {
      const plain = plainOf(c, memory, size, data);
      const variants: [string, ReturnType<typeof plainOf>][] = [['no', plain]];
      for (const z of c.filter((r) => r.mib === size && r.data === data && r.compress)) variants.push([`\`${z.compress}\``, z]);
      for (const [opt, v] of variants) {
        if (!v) continue;
        rows.push([
          sizeName(size),
          data === 'random' ? 'random' : 'log-like text',
          opt,
          mib(v.imageBytes),
          v.imageBytes && plain?.imageBytes ? `${((100 * v.imageBytes) / plain.imageBytes).toFixed(1)}%` : NA,
          spread(v.checkpoint),
          spread(v.pauseAtStop),
          spread(v.restartWarm),
        ]);
      }
    }
  return `## Compression: \`--compress\` beside the uncompressed numbers\n\nRandom data does not compress (ckrun samples each 1 MiB segment and stores it as it is); the log-like text (\`memloop MIB text\`: timestamped request lines whose numbers change) is the compressible case. Random data without \`--compress\` is the rows of the sections above.\n\n${table(
    ['resident data', 'data', '--compress', 'image', 'image / uncompressed', 'checkpoint: request → on disk', 'the stop, seen by the program', 'restart (page cache, data verified)'],
    rows,
  )}`;
}

function pauseSection(m: MemorySummary[]): string {
  return `## Pause: how long the program stands still\n\n${table(
    ['resident data', 'VmRSS', 'the stop, seen by the program', 'largest gap while the checkpoint runs', 'largest gap in 500 ms without a checkpoint', 'ckrun’s own pause_ns (shim’s answer)'],
    m.map((r) => [sizeName(r.mib), mib(r.rssBytes), spread(r.pauseAtStop), spread(r.maxGap, gapMs), spread(r.backgroundMaxGap, gapMs), spread(r.shimPause)]),
  )}`;
}

function checkpointSection(m: MemorySummary[]): string {
  return `## Checkpoint: until the image is complete and on disk\n\n${table(
    ['resident data', 'image', 'ckrun: request → on disk', 'plain write + fsync of the same bytes', 'ratio ckrun / plain write', 'of the plain write: fsync', 'coordinator’s own “took” (verbose log)'],
    m.map((r) => [
      sizeName(r.mib),
      mib(r.imageBytes),
      spread(r.checkpoint),
      spread(r.limit),
      `${spread(r.ratio, x)}${r.checkpoint && r.limit ? `; of the medians ${x(r.checkpoint.median / r.limit.median)}` : ''}`,
      spread(r.limitFsync),
      spread(r.logTook),
    ]),
  )}`;
}

function restartSection(m: MemorySummary[], startup: ReportInput['ckrunStartup']): string {
  const rows = m.map((r) => [
    sizeName(r.mib),
    spread(r.restartWarm),
    spread(r.restartWarmNoVerify),
    spread(r.restartWarmNode),
    spread(r.restartCold),
    spread(r.touchWarm),
    spread(r.touchCold),
    r.pidNamespaceRestarts > 0 ? `${r.pidNamespaceRestarts} restart(s) in a new PID namespace` : '',
  ]);
  return `## Restart: \`ckrun restart\` started → the program's next instruction\n\n\`bin/ckrun restart\` (what users run) starts in the restore host, which verifies and restores the program before node starts; \`node bin/ckrun.js restart\` is node's own restart, from the start.\n\n${table(
    [
      'resident data',
      'image in the page cache',
      'same, with --no-verify-data',
      'same, through node bin/ckrun.js restart',
      'after dropping caches',
      'then one read per page of the data (page cache)',
      '(caches dropped)',
      '',
    ],
    rows,
  )}\nOf this, ckrun's own start-up (\`node bin/ckrun.js --help\`, spawn to exit): ${spread(startup.warm)} warm, ${spread(startup.cold)} after dropping caches.\n${restartShares(m, startup.warm)}`;
}

/** Medians taken apart: what verification adds, what node's own restart costs. */
function restartShares(m: MemorySummary[], help: Summary | null): string {
  const lines = m
    .filter((r) => r.restartWarm && r.restartWarmNoVerify)
    .map(
      (r) =>
        `- ${sizeName(r.mib)}: verifying the data adds ${ms(r.restartWarm!.median - r.restartWarmNoVerify!.median)}` +
        (r.restartWarmNode ? `; node's own restart takes ${ms(r.restartWarmNode.median - r.restartWarm!.median)} longer` : '') +
        (r.restartWarmNode && help ? ` (${ms(r.restartWarmNode.median - help.median)} beyond \`node bin/ckrun.js --help\`)` : ''),
    );
  return (
    (lines.length ? `\nTaken apart (differences of medians, page cache):\n\n${lines.join('\n')}\n` : '') +
    restartPhaseTable(m, 'bin/ckrun restart: the restore host marks its phases in ms since it started', FRONT_SPANS, [
      ['data verified', (r) => r.restartPhases.verified],
      ['--no-verify-data', (r) => r.restartPhases.notVerified],
    ]) +
    restartPhaseTable(m, 'node bin/ckrun.js restart: ckrun marks its phases in ms since its node process started', RESTART_SPANS, [
      ['data verified', (r) => r.restartPhases.node],
    ])
  );
}

/** Where the time of a page-cache restart goes, from ckrun's CKRUN_TRACE marks. */
function restartPhaseTable(
  m: MemorySummary[],
  what: string,
  spans: [string, string | null, string][],
  kinds: [string, (r: MemorySummary) => Record<string, Summary | null> | undefined][],
): string {
  const rows: string[][] = [];
  for (const r of m)
    for (const [which, get] of kinds) {
      const p = get(r);
      if (!p || !Object.values(p).some((s) => s !== null)) continue;
      rows.push([sizeName(r.mib), which, ...spans.map(([label]) => spread(p[label] ?? null))]);
    }
  if (rows.length === 0) return '';
  return `\nWhere the time goes (\`CKRUN_TRACE=1\`, ${what}; medians, min–max; page cache):\n\n${table(
    ['resident data', 'check', ...spans.map(([label]) => label)],
    rows,
  )}\n`;
}

function incrementalSection(m: MemorySummary[]): string {
  const rows = m.map((r) => {
    const i = r.incremental;
    return [
      sizeName(r.mib),
      i.changedPages === null ? NA : String(i.changedPages),
      mib(i.imageBytes),
      mib(i.fullBytes),
      spread(i.share, (v) => `${(100 * v).toFixed(2)}%`),
      spread(i.checkpoint),
      spread(i.pauseAtStop),
      spread(r.restartChain),
    ];
  });
  const notes = m.map((r) => {
    const i = r.incremental;
    const pass =
      i.writePassBeforeNs !== null && i.writePassAfterNs !== null && i.pages
        ? `writing one word in each of its ${i.pages} pages took ${ms(i.writePassBeforeNs)} before any checkpoint and ${ms(i.writePassAfterNs)} after one ` +
          `(${((i.writePassAfterNs - i.writePassBeforeNs) / i.pages).toFixed(0)} ns more per page: the first write to a page after a checkpoint is tracked)`
        : 'the write pass was not measured';
    const odd = [
      i.notIncremental.length ? `${i.notIncremental.length} of ${i.n} were full, not incremental (${[...new Set(i.notIncremental)].join('; ')})` : '',
      r.fullCheckpointsThatWereIncremental ? `${r.fullCheckpointsThatWereIncremental} of the “full” checkpoints above came out incremental` : '',
    ].filter((x) => x !== '');
    return `- ${sizeName(r.mib)}: change tracking “${i.tracking || '?'}”; ${pass}${odd.length ? `; **${odd.join('; ')}**` : ''}`;
  });
  return `## Incremental checkpoints: after the program changed 1% of its pages\n\nEach round: memloop changes one word in every 100th page, then a checkpoint (its parent: the previous one; the first parent is a full image).\n\n${table(
    ['resident data', 'pages changed', 'incremental image', 'full image', 'incremental / full', 'checkpoint: request → on disk', 'the stop, seen by the program', 'restart of the newest (page cache)'],
    rows,
  )}\n${notes.join('\n')}\n`;
}

function kinds(byKind: Record<string, number>): string {
  return Object.entries(byKind)
    .filter(([, v]) => v > 0)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k === 'stored' ? 'shim code (“stored”)' : k} ${mib(v)}`)
    .join(', ');
}

function imageSection(m: MemorySummary[], images: ImageSummary[]): string {
  const rows = [
    ...m.map((r) => [
      `memloop, ${sizeName(r.mib)} random data`,
      mib(r.rssBytes),
      mib(r.imageBytes),
      r.imageBytes && r.rssBytes ? x(r.imageBytes / r.rssBytes) : NA,
      kinds(r.byKind) + (r.anonHugeBytes ? `; ${mib(r.anonHugeBytes)} of VmRSS in huge pages` : ''),
    ]),
    ...images.map((i) => [
      i.program,
      mib(i.rssBytes),
      mib(i.imageBytes),
      i.imageBytes && i.rssBytes ? x(i.imageBytes / i.rssBytes) : NA,
      `${kinds(i.byKind)}; anonymous part of VmRSS: ${mib(i.rssAnonBytes)}`,
    ]),
  ];
  return `## Image size against resident memory\n\n${table(['program', 'VmRSS at checkpoint', 'image file', 'image / VmRSS', 'stored, by region kind'], rows)}`;
}

function overheadSection(ops: OpSummary[]): string {
  return `## Overhead of the shim while nothing is checkpointed\n\nns per operation, median of the runs (min–max). Each round runs the program natively and under ckrun next to each other (alternating which goes first); the ratio is the median of the rounds' ratios (under ckrun / native), with their range: the machine's speed shifts between phases of a run (a VM sharing its host), which a pair sees alike. Beside it, the ratio of the two medians.\n\n${table(
    ['operation', 'native', 'under ckrun', 'ratio (median of the pairs)', 'ratio of the medians'],
    ops.map((o) => [
      o.op,
      spread(o.native, nsOp),
      spread(o.ckrun, nsOp),
      o.pairedRatio ? `${o.pairedRatio.median.toFixed(3)}× (${x(o.pairedRatio.min)}–${x(o.pairedRatio.max)})` : NA,
      o.ratio === null ? NA : `${o.ratio.toFixed(3)}×`,
    ]),
  )}`;
}

function startupSection(s: StartupSummary[], help: Summary | null): string {
  const d = (v: number | null): string => (v === null ? NA : `${v >= 0 ? '+' : ''}${ms(v)}`);
  return `## Start-up\n\nposix_spawn → waitpid of the program, median (min–max) of every start.\n\n${table(
    ['program', 'native', 'shim preloaded, no session', 'shim in a live session', 'Δ live session', 'Δ no session'],
    s.map((r) => [
      r.program,
      spread(r.variants.native),
      spread(r.variants['shim, no session']),
      spread(r.variants['shim, live session']),
      d(r.deltaNs),
      d(r.deltaNoSessionNs),
    ]),
  )}\nThe whole command, spawn to exit (what a user waits for): ${s
    .map((r) => `\`ckrun -- ${r.program}\` ${spread(r.ckrunWhole)}`)
    .join('; ')}; \`ckrun --help\` ${spread(help)}; the difference (a session's set-up, the program and its exit): ${s
    .map((r) => `${r.program} ${d(r.ckrunWholeMinusStartupNs)}`)
    .join(', ')}.\n`;
}

function foreignTotal(f: ForeignUse[]): number {
  return f.reduce((a, p) => a + p.totalS, 0);
}

function foreignText(f: ForeignUse[]): string {
  const busy = f.filter((p) => p.totalS >= 0.05);
  if (busy.length === 0) return 'none';
  return busy
    .map((p) => {
      const top = Object.entries(p.byCommand)
        .sort((a, b) => b[1] - a[1])
        .slice(0, 3)
        .map(([c, v]) => `${c} ${v.toFixed(1)} s`)
        .join(', ');
      return `${p.phase}: ${p.totalS.toFixed(1)} s (${top})`;
    })
    .join('; ');
}

/** A warning at the top when other processes used the CPUs noticeably. */
function interferenceWarning(e: Environment): string {
  const total = foreignTotal(e.foreignCpu);
  if (total < 2) return '';
  return `\n**Warning:** other processes used at least ${total.toFixed(1)} CPU-seconds during this run (see “Machine and build”); on 2 cores this shows up in the timings.\n`;
}

function environmentSection(r: ReportInput): string {
  const e = r.environment;
  const lines = [
    `- ${r.quick ? '**--quick run** (10 and 100 MiB only, fewer repetitions)' : 'full run'}, started ${r.startedAt}, took ${r.durationS.toFixed(0)} s`,
    `- ${e.hostname}: ${e.kernel}, ${e.cores} × ${e.cpu}, ${(e.memoryBytes / 2 ** 30).toFixed(1)} GiB RAM, ${e.filesystem}`,
    `- node ${e.node}, ${e.gcc}, python3 = ${e.python.path} (${e.python.version}), transparent huge pages: \`${e.transparentHugepages}\`, DAMON: ${e.damon}`,
    `- ckrun ${e.gitCommit}; build ${Object.entries(e.buildTimes)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}${e.buildStale ? ' — **older than a file in preload/: the measured shim may not match the sources**' : ''}`,
    e.uncommittedChanges.length
      ? `- **uncommitted changes** in the measured tree: ${e.uncommittedChanges.map((l) => `\`${l.trim()}\``).join(', ')}`
      : '- no uncommitted changes in preload/, src/, addon/',
    `- CPUs ${e.cpuBusyAtStart === null ? '?' : `${(e.cpuBusyAtStart * 100).toFixed(0)}%`} busy in the second before the start; load average at the start ${e.loadAverageStart
      .map((v) => v.toFixed(2))
      .join(' ')}, at the end ${e.loadAverageEnd?.map((v) => v.toFixed(2)).join(' ') ?? '?'} (the benchmark's own spinning program counts)`,
  ];
  lines.push(`- other processes' CPU time during the run (at least; sampled every 2 s): ${foreignText(e.foreignCpu)}`);
  return `## Machine and build\n\n${lines.join('\n')}\n`;
}

function method(wraps: string): string {
  return `## How each number is measured, and its biases

- **The stop, seen by the program**: \`bench/programs/memloop.c\` fills its data with xorshift
  output, then spins reading CLOCK_MONOTONIC and reports every gap > 100 µs between two
  consecutive iterations (with CLOCK_REALTIME at its end). The gap whose CLOCK_REALTIME span
  holds the image's \`created_ns\` (taken by the shim while the program is stopped) is the stop.
  It includes signal delivery and return, which the shim's own \`pause_ns\` does not.
- **Largest gap while the checkpoint runs**: the largest gap between sending the request and
  the image being on disk. On this 2-core machine the forked writer, ckrun's node process and
  anything else running compete with the program, so it includes scheduler preemptions that
  are not a stop; the column beside it, the largest gap in the 500 ms before the request, is
  the background for comparison. The program does not write its data while the writer runs,
  so the copy-on-write faults a writing program would take are not in these numbers.
- **Checkpoint**: the request is the library call \`ckrun checkpoint\` makes
  (\`requestCheckpoint\`, over the session socket), timed in the benchmark's process until it
  answers with the generation directory: images written, fsync'd, renamed, manifest written,
  directory fsync'd. \`ckrun checkpoint\` on the command line adds ckrun's node start-up
  (see Restart). The plain write (\`bench/programs/writelimit.c\`) writes the image's byte
  count from a random buffer in 8 MiB \`write\`s (as ckrun's writer does) into a new file in the same
  directory, then \`fsync\` + \`close\`; it alternates going before and after the checkpoint.
  ckrun's writer hands every 8 MiB it wrote to the disk at once (\`sync_file_range\`), so
  the disk works while it checksums and copies the next ones; the plain write leaves all of
  it to the final \`fsync\`, which is why the ratio can be below 1.
  One uncounted pair (checkpoint and plain write) goes first: the first write of a size
  into the page cache is slower on this VM for both.
  The ratio is taken per pair, then the median. Before each checkpoint and each plain write
  the benchmark waits (up to 5 s) until other processes use less than ~10% of the CPUs. Before each of the two, \`sync\` and 300 ms
  of rest (deleted images are discarded by this ext4 mount). memloop spins on one of the two
  cores throughout, so ckrun's writer, its node process and the kernel's writeback share the
  other core; the plain write runs under the same condition.
- **Restart**: CLOCK_MONOTONIC just before spawning \`bin/ckrun restart GEN\` (the command
  users run: a shell script that starts the restore host, which verifies and restores the
  program and then execs node to coordinate it) to the program's first loop iteration after
  the restore (it sees a gap > 50 ms and a new parent, and prints that iteration's
  CLOCK_MONOTONIC). It includes the shell, the image check (\`ckrun restart\` verifies every
  data checksum by default; the column beside it skips that with \`--no-verify-data\`) and
  the restore; the next column runs \`node bin/ckrun.js restart GEN\`, node's own restart,
  which includes node's start-up (runs alternating). One uncounted
  warm-up restart precedes the page-cache runs, and the image is read through before each;
  "after dropping caches" is \`sync; echo 3 > /proc/sys/vm/drop_caches\` before each run, which
  also evicts node, ckrun's JavaScript and the libraries (all of it is part of the number).
  The program does not touch its data to report the restart; the next column is its first
  pass over the data (one 8-byte read per 4 KiB page), where pages that a restore maps
  instead of copying are faulted in. Every restart runs with \`CKRUN_TRACE=1\`: ckrun then
  prints when each phase ended in ms since its node process started (node's
  \`performance.now()\`, whose origin is the process's start, a few hundred µs after the
  spawn); the "where the time goes" table is made of those marks.
- **Incremental**: after the full checkpoints (each deleted before the next, so none of
  them has a parent to refer to), one full checkpoint is kept; then, five times, memloop
  (on SIGUSR1) adds a constant to one word of every 100th page and a checkpoint follows. The
  share is the new generation's own image file against the full image file (the hard-linked
  older images are not counted). The write pass (SIGUSR2) rewrites one word of every page
  with its own value, once right after filling and once after the checkpoints; the
  difference is what change tracking costs a program that writes its memory. Restarts of
  the newest incremental image check that the data (a per-page sum) is the changed one.
- **Compression**: memloop with random data and with log-like text, each under
  \`ckrun --compress\` (level 1, the default) and the text also without it; each
  checkpoint is timed as above (until the compressed image is fsync'd, renamed and the
  generation complete), the previous generation deleted before the next so every image is
  full; the last one is restarted from the page cache (with ckrun's default data
  verification, which for a \`.ckpt.gz\` includes decompressing it beside the image).
- **Image size**: the generation's own \`.ckpt\` file (not older images hard-linked into it)
  against VmRSS from /proc/PID/status read just before the request; "stored, by region kind"
  sums the image's per-region bytes.
- **Overhead**: \`bench/programs/overhead.c\` times each operation in 5 batches after a
  warm-up and prints the median batch's ns/op; it runs natively and as
  \`node bin/ckrun.js --dir ... -- overhead\` (a real session), alternately. The shim wraps
  only ${wraps} (preload/exports.map), so where none of these is involved a ratio shows
  run-to-run noise rather than a cost. Nothing is checkpointed during these runs; what
  change tracking costs after a checkpoint is in the Incremental section. Each run waits
  (up to 10 s) for a moment when the CPUs are less than 15% busy. fork+waitpid is the one
  operation where the shim does work: in the child, fork's handler closes its copy of the
  parent's connection to ckrun and stores nothing, so no page is copied for it (a child under
  ckrun takes exactly the page faults of a native one, counted with getrusage; it joins only
  when a checkpoint asks it to). Beside that, any preloaded library makes fork a little
  dearer, because its mappings are copied and torn down too: the shim has three (code, data,
  zeroed data), an empty library linked the usual way five. fork and pthread create+join run
  more iterations than the rest (6000 and 30000 per run), as their cost varies most on this
  VM. The median of the pairs' ratios and the ratio of the medians can differ widely for
  them on a noisy run: read both.
- **Start-up**: \`bench/programs/spawntime.c\` times posix_spawn → waitpid; natively, with
  LD_PRELOAD set to the shim but no session (no CKRUN_SOCK: the shim stays inactive), and with
  LD_PRELOAD and the CKRUN_* variables copied from a live session's program
  (/proc/PID/environ), so each start connects to that session and says hello. python3 is the
  interpreter \`python3\` resolves to (pyenv's shell shim is bypassed).
- **Noise on this machine**: it is a VM whose guest memory is handed back to the host
  (DAMON pageout, see below), and writing into the page cache varies a lot from one run to
  the next: the \`write\` phase of the same plain 1 GiB write took 0.2–2.1 s in a manual
  test with 16 MiB, 64 MiB and 1 GiB writes alike, while \`fsync\` stayed at 0.4 s. The
  checkpoint ratios' min–max show it; the alternating pairs and the medians are there to
  keep it from favouring either side.
- Medians of all runs with min and max. Absolute times depend on the machine and on what
  else runs on it (see “Machine and build”); the ratios are the comparable numbers.
`;
}

export function renderReport(r: ReportInput): string {
  const parts = [
    `# ckrun benchmark results\n\nWritten by \`npm run bench\`${r.quick ? ' --quick' : ''} (bench/run.ts); raw numbers in \`bench/results.json\`.\n${interferenceWarning(r.environment)}`,
    targetsSection(r.targets, r.hasCompress, r.compress, r.memory),
    pauseSection(r.memory),
    checkpointSection(r.memory),
    restartSection(r.memory, r.ckrunStartup),
    incrementalSection(r.memory),
    compressSection(r.compress, r.memory),
    imageSection(r.memory, r.images),
    overheadSection(r.overhead),
    startupSection(r.startup, r.ckrunStartup.warm),
    r.failures.length ? `## Failures\n\n${r.failures.map((f) => `- ${f.replace(/\n/g, ' ⏎ ')}`).join('\n')}\n` : '## Failures\n\nNone.\n',
    environmentSection(r),
    method(r.environment.shimWraps.length ? r.environment.shimWraps.join(', ') : 'a few calls'),
  ];
  return parts.join('\n');
}
