// glibc's helper threads (issue 11): the SIGEV_THREAD timer thread, the
// threads it starts for callbacks and the POSIX AIO workers block every
// signal but glibc's SIGSETXID, so ckrun's signal never reaches them; the
// checkpoint stops them through SIGSETXID. examples/sigev-aio.c checks its
// own timers and AIO requests through two restarts; vim 9 (which keeps a
// SIGEV_THREAD timer) is edited in a pseudo-terminal across two restarts.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type Cbor } from './lib/cbor.js';
import { ckrun } from './lib/ckrun.js';
import { imagesOf, readImage, readManifest } from './lib/images.js';
import { CKRUN_SH } from './lib/paths.js';
import { sleep } from './lib/proc.js';
import { alive, findRestored } from './lib/processes.js';
import { Scope } from './lib/scope.js';
import { type StageContext, spine } from './lib/spine.js';

type Entry = { [k: string]: Cbor };

/** glibc's own threads block every signal but SIGSETXID (33), and SIGTIMER (32) while they wait for it. */
function glibcHelpers(gen: string): Entry[] {
  const img = readImage(imagesOf(gen)[0]!);
  // SIGKILL and SIGSTOP are never blocked; SIGTIMER is unblocked while the timer thread waits for it
  const all = ((1n << 64n) - 1n) & ~(1n << 32n);
  const helper = (m: bigint): boolean => (m | (1n << 8n) | (1n << 18n) | (1n << 31n)) === all;
  return ((img.meta.threads as Entry[] | undefined) ?? []).filter((t) => helper(BigInt(t.sigmask as number | bigint)));
}

function noFailure(ctx: StageContext): void {
  const bad = ctx.proc.lines.find((l) => l.startsWith('FAIL'));
  if (bad) throw new Error(`stage ${ctx.stage}: the program says: ${bad}\n${ctx.proc.describe(20)}`);
}

test('SIGEV_THREAD timers (interval and one-shot) and AIO requests in flight come back, twice', async () => {
  await spine({
    name: 'sigev-aio',
    example: 'sigev-aio',
    args: (dir) => [path.join(dir, 'blocks'), '150'],
    first: 20,
    second: 60,
    expectLines: ['pipe reads: 30', 'sigev-aio: done'],
    shortLivedThreads: true,
    check(ctx) {
      noFailure(ctx);
      const gen = path.join(ctx.ckpt, String(ctx.stage));
      const helpers = glibcHelpers(gen);
      if (helpers.length === 0) throw new Error(`image ${ctx.stage}: no thread of glibc's (all signals blocked but SIGSETXID) was saved`);
      const timers = ((readImage(imagesOf(gen)[0]!).meta.signals as Entry).timers as Entry[] | undefined) ?? [];
      if (timers.filter((t) => Number(t.signal) === 32).length !== 2)
        throw new Error(`image ${ctx.stage}: expected glibc's two SIGEV_THREAD timers (signal 32), found ${JSON.stringify(timers.map((t) => t.signal))}`);
    },
  });
});

/** Effective user and group of every thread of the restarted program, read from outside. */
function threadCreds(restarted: number, pid: number): { tid: string; uid: number; gid: number }[] {
  const found = findRestored(restarted, pid);
  if (!found) throw new Error(`no restarted process with PID ${pid} below ${restarted}`);
  const out: { tid: string; uid: number; gid: number }[] = [];
  for (const tid of fs.readdirSync(`/proc/${found.outer}/task`)) {
    let status: string;
    try {
      status = fs.readFileSync(`/proc/${found.outer}/task/${tid}/status`, 'utf8');
    } catch {
      continue; // a timer callback's thread that ended
    }
    const eff = (f: string): number => Number(new RegExp(`^${f}:\\s+\\d+\\s+(\\d+)`, 'm').exec(status)?.[1] ?? -1);
    out.push({ tid, uid: eff('Uid'), gid: eff('Gid') });
  }
  return out;
}

test('setuid() in a multithreaded program under the shim reaches every thread (glibc helper threads too), before and after two restarts', async () => {
  await spine({
    name: 'setxid',
    example: 'setxid',
    args: () => ['130'],
    first: 20,
    second: 60,
    expectLines: ['effective user 4343 group 4242', 'effective user 0 group 0', 'child: both threads run as user 4444', 'setxid: done'],
    shortLivedThreads: true,
    check(ctx) {
      noFailure(ctx);
      if (ctx.stage !== 1) return;
      // at step 60 and later (before 100) every thread runs as 4343/4242: seen from outside too
      const pid = Number(readManifest(path.join(ctx.ckpt, '1')).root);
      const creds = threadCreds(ctx.proc.pid, pid);
      if (creds.length < 6) throw new Error(`the restarted program has ${creds.length} threads, expected 6 or more`);
      const wrong = creds.filter((c) => c.uid !== 4343 || c.gid !== 4242);
      if (wrong.length) throw new Error(`threads not changed by setresuid/setresgid: ${JSON.stringify(wrong)}`);
    },
  });
});

// ---------------------------------------------------------------- vim in tmux

class Tmux {
  constructor(
    readonly socket: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  run(args: string[]): string {
    return execFileSync('tmux', ['-L', this.socket, ...args], { env: this.env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  }

  screen(window: number): string {
    try {
      return this.run(['capture-pane', '-p', '-t', `t:${window}`]);
    } catch {
      return '';
    }
  }

  keys(window: number, ...keys: string[]): void {
    this.run(['send-keys', '-t', `t:${window}`, ...keys]);
  }

  async until(window: number, pred: (screen: string) => boolean, what: string, ms = 20_000): Promise<string> {
    const end = Date.now() + ms;
    for (;;) {
      const s = this.screen(window);
      if (pred(s)) return s;
      if (Date.now() > end) throw new Error(`waited ${ms / 1000} s for ${what}; window ${window} shows:\n${s}`);
      await sleep(100);
    }
  }

  kill(): void {
    try {
      this.run(['kill-server']);
    } catch {
      // not running
    }
  }
}

/** The PID of the ckrun session writing to ckpt (ckrun status). */
async function sessionPid(ckpt: string): Promise<number> {
  const r = await ckrun(['status', '--dir', ckpt, '--json']);
  if (r.code !== 0) throw new Error(`ckrun status: ${r.stderr}`);
  return Number((JSON.parse(r.stdout) as { pid: number }).pid);
}

async function gone(pid: number, what: string): Promise<void> {
  for (let i = 0; i < 100 && alive(pid); i++) await sleep(50);
  if (alive(pid)) throw new Error(`${what} (PID ${pid}) still runs`);
}

test('vim keeps its SIGEV_THREAD timer: checkpoint, kill -9, restart in a new window, type, twice; :wq writes it all', async () => {
  const scope = new Scope('vim-tmux');
  const tmux = new Tmux(`ckrun-test-${process.pid}`, { ...process.env, TERM: 'xterm' });
  try {
    const work = scope.dir('work');
    const ckpt = scope.ckptDir('ckpt');
    const file = path.join(work, 'notes.txt');
    fs.writeFileSync(file, 'start\n');
    // each window outlives its ckrun: the server must too
    const vim = `${CKRUN_SH} --dir ${ckpt} -- vim.basic -u NONE -N -n ${file}; sleep 60`;
    tmux.run(['new-session', '-d', '-s', 't', '-x', '80', '-y', '24', '-c', work, vim]);
    await tmux.until(0, (s) => s.includes('start'), 'vim to show the file');
    tmux.keys(0, 'A one', 'Escape');
    // vim takes Escape only after 'timeoutlen' (it may start a key's code): a checkpoint before that finds it still inserting
    await tmux.until(0, (s) => s.includes('start one') && !s.includes('-- INSERT --'), 'the first words typed, and vim back in normal mode');

    let window = 0;
    for (const [gen, word] of [
      [1, 'two'],
      [2, 'three'],
    ] as const) {
      const r = await ckrun(['checkpoint', '--dir', ckpt]);
      assert.is(r.code, 0, `checkpoint ${gen} of vim: ${r.stderr}`);
      assert.ok(glibcHelpers(path.join(ckpt, String(gen))).length > 0, `image ${gen} holds glibc's timer thread`);
      // typed after the checkpoint: gone with the kill
      tmux.keys(window, 'A lost', 'Escape');
      await tmux.until(window, (s) => s.includes('lost'), 'the words typed after the checkpoint');
      const ck = await sessionPid(ckpt);
      process.kill(ck, 'SIGKILL');
      await gone(ck, 'ckrun after kill -9');
      // the terminal's own settings come back with another part of issue 11:
      // here the new window is put in the raw mode vim had set
      const status = path.join(work, `restart-${gen}.status`);
      tmux.run(['new-window', '-t', 't:', '-c', work, `stty raw -echo; ${CKRUN_SH} restart --dir ${ckpt}; echo $? > ${status}; sleep 60`]);
      window++;
      for (let i = 0; i < 100; i++) {
        const s = await ckrun(['status', '--dir', ckpt]);
        if (s.code === 0) break;
        await sleep(100);
      }
      tmux.keys(window, `A ${word}`, 'Escape');
      await tmux.until(window, (s) => s.includes(word) && !s.includes('-- INSERT --'), `vim to take "${word}" after restart ${gen}, and go back to normal mode`);
    }
    tmux.keys(window, ':wq', 'Enter');
    const status = path.join(work, 'restart-2.status');
    for (let i = 0; i < 200 && !fs.existsSync(status); i++) await sleep(100);
    assert.ok(fs.existsSync(status), `ckrun restart did not end after :wq; window shows:\n${tmux.screen(window)}`);
    assert.is(fs.readFileSync(status, 'utf8').trim(), '0', 'ckrun restart exits with vim\'s status');
    assert.is(fs.readFileSync(file, 'utf8'), 'start one two three\n', 'the file holds what was typed before and after each restart, not what was lost');
  } finally {
    tmux.kill();
    await scope.cleanup();
  }
});

test.run();
