// Terminals (issue 11): the terminal a program runs in, and the
// pseudo-terminals it makes itself.
//
// - less in tmux: ckrun runs less in a tmux window; after kill -9 and a
//   restart in a new window, the screen is drawn again (less got SIGWINCH),
//   `j` scrolls at once (the terminal is in less's mode again: no echo, no
//   waiting for Enter) and `q` quits; twice.
// - examples/ptyjobs.c: a pseudo-terminal of the program's own with a
//   session on it, its settings, its foreground group (a group whose leader
//   has exited), an orphaned group and lines in flight in it; the processes'
//   pid, pgid, sid and tpgid (as `ps -o pid,pgid,sid,tpgid` shows them) are
//   the same after the restart, and the program's own checks pass.
// - util-linux script: its pseudo-terminal and its child come back.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkpoint, ckrun } from './lib/ckrun.js';
import { CKRUN, CKRUN_SH, EXAMPLES, NODE } from './lib/paths.js';
import { python3 } from './lib/examples.js';
import { Proc, sleep } from './lib/proc.js';
import { alive, descendants, isZombie } from './lib/processes.js';
import { Scope } from './lib/scope.js';
import { asUserArgv, NOBODY, NOGROUP, sharedCkrun } from './lib/users.js';
import { kill9Session, sessionByEnv, treeProgram, treeScenario, until } from './lib/tree.js';

// ---------------------------------------------------------------- less in tmux

class Tmux {
  constructor(readonly socket: string) {}

  run(...args: string[]): string {
    return execFileSync('tmux', ['-S', this.socket, ...args], { encoding: 'utf8' });
  }

  screen(win: string): string[] {
    return this.run('capture-pane', '-p', '-t', win).split('\n');
  }

  pane(win: string, what: string): string {
    return this.run('display', '-p', '-t', win, `#{${what}}`).trim();
  }

  /** Waits until the window's screen satisfies pred. */
  async until(win: string, pred: (screen: string[]) => boolean, what: string): Promise<void> {
    const end = Date.now() + 30_000;
    while (!pred(this.screen(win))) {
      if (Date.now() > end) throw new Error(`tmux window ${win}: waited 30 s for ${what}; the screen:\n${this.screen(win).join('\n')}`);
      await sleep(50);
    }
  }
}

/** "state S, wchan do_wait, threads 7" of a process that should have ended: where it waits. */
function describeStuck(pid: number): string {
  const read = (f: string): string => {
    try {
      return fs.readFileSync(`/proc/${pid}/${f}`, 'utf8').trim();
    } catch {
      return '?';
    }
  };
  const stat = read('stat');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // field 38 of stat (the 36th after the name): a child the parent's wait() does not see has one other than SIGCHLD
  const state = `${fields[0]}, exit signal ${fields[35]}`;
  const threads = (() => {
    try {
      return fs.readdirSync(`/proc/${pid}/task`).map((t) => `${t}:${fs.readFileSync(`/proc/${pid}/task/${t}/wchan`, 'utf8')}`).join(' ');
    } catch {
      return '?';
    }
  })();
  const status = read('status');
  const field = (k: string): string => new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(status)?.[1] ?? '?';
  const ppid = field('PPid');
  const parent = (() => {
    try {
      return fs.readFileSync(`/proc/${ppid}/cmdline`, 'utf8').replace(/\0/g, ' ');
    } catch {
      return '?';
    }
  })();
  const ps = (() => {
    try {
      const t = fs.readFileSync(`/proc/${ppid}/status`, 'utf8');
      const w = fs.readFileSync(`/proc/${ppid}/wchan`, 'utf8');
      return ['State', 'SigPnd', 'ShdPnd', 'SigBlk', 'SigIgn', 'SigCgt'].map((k) => `${k} ${new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(t)?.[1]}`).join(', ') + `, wchan ${w}`;
    } catch {
      return '?';
    }
  })();
  return `parent's ${ps}; ${read('cmdline').replace(/\0/g, ' ')}; state ${state}; threads ${threads}; parent ${ppid} (${parent}); tracer ${field('TracerPid')}; SigBlk ${field('SigBlk')}`;
}

const top = (n: number) => (s: string[]): boolean => s[0] === `line ${String(n).padStart(3, '0')}`;

/** kill -9 the ckrun a window runs (its only process: `exec`), and wait until less is gone too. */
async function kill9Window(tmux: Tmux, win: string): Promise<void> {
  const pid = Number(tmux.pane(win, 'pane_pid'));
  const family = [pid, ...descendants(pid)];
  process.kill(pid, 'SIGKILL');
  const end = Date.now() + 5_000;
  const running = (p: number): boolean => alive(p) && !isZombie(p);
  while (family.some(running)) {
    if (Date.now() > end) throw new Error(`kill -9 of ckrun (${pid}) left ${family.filter(running).join(', ')} running`);
    await sleep(50);
  }
}

test('less in tmux: after kill -9 and a restart in a new tmux window, the screen is redrawn, j scrolls, q quits; twice', async () => {
  const scope = new Scope('term-less');
  const tmux = new Tmux(path.join(scope.root, 'tmux.sock'));
  try {
    const file = path.join(scope.root, 'file.txt');
    fs.writeFileSync(file, Array.from({ length: 300 }, (_, i) => `line ${String(i + 1).padStart(3, '0')}\n`).join(''));
    const ckpt = scope.ckptDir();
    tmux.run('-f', '/dev/null', 'new-session', '-d', '-x', '80', '-y', '24', 'sleep 600');
    tmux.run('set-option', '-g', 'remain-on-exit', 'on');
    tmux.run('new-window', '-d', '-n', 'w0', `exec ${CKRUN_SH} --dir ${ckpt} -- less ${file}`);
    await tmux.until('w0', top(1), 'less to show the file');
    let at = 1;
    for (const [from, to] of [['w0', 'w1'], ['w1', 'w2']] as const) {
      tmux.run('send-keys', '-t', from, 'j', 'j', 'j');
      at += 3;
      await tmux.until(from, top(at), `j to scroll to line ${at}`);
      await checkpoint(ckpt);
      await kill9Window(tmux, from);
      tmux.run('new-window', '-d', '-n', to, `exec ${CKRUN_SH} restart --dir ${ckpt}`);
      // a new window starts empty: the file's lines are there only if less drew them again
      await tmux.until(to, (s) => top(at)(s) && s.includes(`line ${String(at + 22).padStart(3, '0')}`), `the restarted less to redraw line ${at} on`);
      tmux.run('send-keys', '-t', to, 'j');
      at += 1;
      // no Enter: the terminal is in less's mode again
      await tmux.until(to, top(at), `a single j (no Enter) to scroll to line ${at}`);
      assert.not.ok(tmux.screen(to).some((l) => /j/.test(l)), 'the j was not echoed');
    }
    tmux.run('send-keys', '-t', 'w2', 'q');
    const end = Date.now() + 30_000;
    while (tmux.pane('w2', 'pane_dead') !== '1') {
      if (Date.now() > end) throw new Error(`q did not end less: the screen:\n${tmux.screen('w2').join('\n')}`);
      await sleep(50);
    }
    // the exit status may show a moment after the pane is dead (seconds on a loaded machine)
    let status = '';
    for (let i = 0; i < 100 && status === ''; i++, await sleep(50)) status = tmux.pane('w2', 'pane_dead_status');
    if (status === '') {
      // On a loaded machine tmux was seen (4 times in 40 runs) to leave the
      // exited ckrun a zombie with no SIGCHLD pending: its exit was reaped,
      // status 0, as soon as tmux was sent a SIGCHLD. ckrun's exit status is
      // what this checks, so tmux is asked to look again.
      process.kill(Number(tmux.run('display', '-p', '#{pid}').trim()), 'SIGCHLD');
      for (let i = 0; i < 100 && status === ''; i++, await sleep(50)) status = tmux.pane('w2', 'pane_dead_status');
    }
    if (status !== '0') {
      // what ckrun printed stays on the dead pane's screen; where its process is tells why no status came
      const pid = Number(tmux.pane('w2', 'pane_pid'));
      const where = alive(pid) ? `${pid} runs (${describeStuck(pid)}), below it: ${descendants(pid).join(' ') || 'nothing'}` : `${pid} is gone`;
      assert.unreachable(
        `the restarted ckrun should exit 0 when less quits; status '${status}', signal '${tmux.pane('w2', 'pane_dead_signal')}'; ckrun ${where}; the screen:\n${tmux.screen('w2').join('\n')}`,
      );
    }
  } finally {
    try {
      tmux.run('kill-server');
    } catch {
      // gone already
    }
    await scope.cleanup();
  }
});

// ---------------------------------------------------------------- a pty of the program's own

/** `pid pgid sid tpgid` of every live process of the session, in the PID namespace the test runs in. */
function psRelations(ckpt: string): string[] {
  return sessionByEnv(ckpt)
    .map((pid) => {
      const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      return `${pid} ${f[2]} ${f[3]} ${f[5]}`; // pgrp, session, tpgid
    })
    .sort();
}

test('a pty of its own with a session, its settings, a foreground group whose leader exited, an orphaned group and lines in flight: kill -9, restart, twice', async () => {
  const scope = new Scope('term-ptyjobs');
  try {
    const steps = 300;
    const before: string[][] = [];
    let inFlight = 0;
    await treeScenario(scope, {
      name: 'ptyjobs',
      program: treeProgram('ptyjobs', ['--steps', String(steps)]),
      cwd: scope.dir('work'),
      minProcesses: 3,
      async progress({ proc, ckpt, stage }) {
        const got = (): number => proc.lines.filter((l) => l.startsWith('got line')).length;
        const from = got();
        await until(proc, () => got() >= from + 30, '30 more lines through the pty');
        const now = psRelations(ckpt);
        assert.ok(now.length >= 3, `the family: ${now.join('; ')}`);
        if (stage === 1) {
          // the restart's orchestrator aside
          const pids = new Set(before[0]!.map((r) => r.split(' ')[0]));
          assert.equal(now.filter((r) => pids.has(r.split(' ')[0])), before[0], 'after the restart: the same pid, pgid, sid and tpgid');
        }
        before[stage] = now;
        // the foreground group is one whose leader is gone
        const fg = now.map((r) => r.split(' ')[3]).find((t) => t !== '-1');
        assert.ok(fg && !now.some((r) => r.split(' ')[0] === fg), `the foreground group ${fg} has no leader: ${now.join('; ')}`);
      },
      checkGeneration(gen) {
        const json = execFileSync(process.execPath, [CKRUN, 'inspect', gen, '--json'], { encoding: 'utf8' });
        if (/"end":"master"[^}]*"data":\[/.test(json.replace(/\s/g, ''))) inFlight++;
      },
      verify([s1, r1, r2]) {
        for (const p of [s1, r1, r2]) assert.not.ok(p.lines.some((l) => l.startsWith('FAIL')), p.describe(12));
        assert.is(r2.lines[r2.lines.length - 1], `done ${steps}`, r2.describe());
        const got = r2.lines.filter((l) => l.startsWith('got line')).map((l) => Number(l.split(' ')[2]));
        for (let i = 1; i < got.length; i++) assert.is(got[i], got[i - 1]! + 1, 'every line once, in order');
        assert.ok(inFlight >= 1, 'at least one checkpoint had lines in flight in the pty');
      },
    });
  } finally {
    await scope.cleanup();
  }
});

test('the same pty, session and groups restarted by an ordinary user (user and PID namespace of its own): kill -9, restart, twice', async () => {
  if (process.geteuid?.() !== 0) throw new Error('this test runs ckrun as user nobody, which needs root: run npm test as root');
  const shared = sharedCkrun();
  const scope = new Scope('term-ptyjobs-nobody');
  try {
    fs.chmodSync(scope.root, 0o755);
    const work = scope.dir('work');
    fs.chownSync(work, NOBODY, NOGROUP);
    const ck = path.join(work, 'ck');
    const steps = 300;
    const cmd = `${path.join(shared.examples, 'ptyjobs')} --steps ${steps}`;
    const ckrun = `node ${shared.ckrunJs}`;
    // (cat | grep -c prints a number also before the file exists)
    const got = (f: string, n: number): string => `until [ "$(cat ${f} 2>/dev/null | grep -c '^got line')" -ge ${n} ]; do sleep 0.05; done`;
    const [exe, ...args] = asUserArgv(
      NOBODY,
      NOGROUP,
      `set -e; cd ${work}
      ${ckrun} --dir ${ck} -- ${cmd} > run1.txt 2>&1 & ck=$!
      ${got('run1.txt', 30)}
      ${ckrun} checkpoint --dir ${ck}
      kill -9 $ck; wait $ck 2>/dev/null || true
      ${ckrun} restart --stdio=inherit --dir ${ck} > run2.txt 2>&1 & ck=$!
      ${got('run2.txt', 30)}
      ${ckrun} checkpoint --dir ${ck}
      kill -9 $ck; wait $ck 2>/dev/null || true
      ${ckrun} restart --stdio=inherit --dir ${ck} > run3.txt 2>&1`,
    );
    const out = execFileSync(exe!, args, { encoding: 'utf8', timeout: 120_000 });
    assert.match(out, /\/1\n[\s\S]*\/2\n/, `both checkpoints should be generations 1 and 2:\n${out}`);
    const runs = ['run1.txt', 'run2.txt', 'run3.txt'].map((f) => fs.readFileSync(path.join(work, f), 'utf8').split('\n').filter(Boolean));
    for (const r of runs) assert.not.ok(r.some((l) => l.startsWith('FAIL')), r.slice(-5).join('\n'));
    const [, r2, r3] = runs;
    assert.is(r3![r3!.length - 1], `done ${steps}`, r3!.slice(-5).join('\n'));
    const first = (r: string[]): number => Number(r.find((l) => l.startsWith('got line'))?.split(' ')[2]);
    assert.ok(first(r2!) > 30 && first(r3!) > first(r2!), `each restart continues where its checkpoint was: ${first(r2!)}, ${first(r3!)}`);
  } finally {
    await scope.cleanup();
  }
});

test('complete lines the slave side has not read, each ended another way (newline, a quoted newline inside, end of file, an empty end of file, VEOL), and a line not ended after them: checkpoints that resume leave them as they were; after kill -9 and a restart each read gives the same line; twice', async () => {
  const scope = new Scope('term-lines');
  const want = ["read b'hello\\n'", "read b'a\\nb\\n'", "read b'eof-line'", "read b''", "read b'x!'", "read b'partial\\n'", "echo b'tial\\r\\n'"];
  try {
    const ckpt = scope.ckptDir('ckpt-resumed');
    const flag = path.join(scope.root, 'read-resumed');
    const p = scope.launch({ dir: ckpt, program: [python3(), path.join(EXAMPLES, 'pty_input.py'), flag, 'lines'], label: 'ckrun pty_input lines' });
    await p.waitFor(() => p.lines.includes('written'), 'the lines written into the master');
    const gen = await checkpoint(ckpt);
    await checkpoint(ckpt);
    const json = execFileSync(process.execPath, [CKRUN, 'inspect', gen, '--json'], { encoding: 'utf8' }).replace(/\s/g, '');
    assert.is(json.match(/"lines":\[12,20,37,37,40\]/g)?.length, 2, `both processes that hold the master saved its five lines: ${json.slice(0, 2000)}`);
    fs.writeFileSync(flag, '');
    assert.is((await p.waitExit()).code, 0, p.describe());
    assert.equal(typed(p), want, p.describe());

    const ckpt2 = scope.ckptDir('ckpt-restarted');
    const flag2 = path.join(scope.root, 'read-restarted');
    const s1 = scope.launch({ dir: ckpt2, program: [python3(), path.join(EXAMPLES, 'pty_input.py'), flag2, 'lines'], label: 'ckrun pty_input lines (restarted)' });
    await s1.waitFor(() => s1.lines.includes('written'), 'the lines written into the master');
    await checkpoint(ckpt2);
    await kill9Session(s1, ckpt2, 'the launched run');
    let run = s1;
    for (const stage of [1, 2]) {
      const r = scope.restart({ dir: ckpt2, label: `restart ${stage} of pty_input lines` });
      await r.waitFor(() => r.lines.some((l) => l.startsWith('waiting')), 'the restarted program waiting');
      if (stage === 1) {
        await checkpoint(ckpt2);
        await kill9Session(r, ckpt2, 'the first restart');
      }
      run = r;
    }
    fs.writeFileSync(flag2, '');
    assert.is((await run.waitExit()).code, 0, run.describe());
    assert.equal(typed(run), want, run.describe());
  } finally {
    await scope.cleanup();
  }
});

/** The lines of pty_input.py's run p from "read" on. */
function typed(p: { lines: string[] }): string[] {
  return p.lines.filter((l) => /^(read|echo) /.test(l));
}

test('a line typed but not ended (canonical mode) in a pty of its own: saved, kept by the resumed program, and after kill -9 and a restart read whole with no second echo; twice', async () => {
  const scope = new Scope('term-partial');
  try {
    const ckpt = scope.ckptDir();
    const flag = path.join(scope.root, 'type-the-rest');
    const prog = [python3(), path.join(EXAMPLES, 'pty_input.py'), flag, 'partial'];
    const s1 = scope.launch({ dir: ckpt, program: prog, label: 'ckrun pty_input partial' });
    await s1.waitFor(() => s1.lines.includes('written'), 'the partial line typed into the master');
    const gen1 = await checkpoint(ckpt);
    const json = execFileSync(process.execPath, [CKRUN, 'inspect', gen1, '--json'], { encoding: 'utf8' }).replace(/\s/g, '');
    assert.match(json, /"end":"master"[^}]*"input":\[/, 'the image holds the pty\'s unread input');
    assert.is(json.match(/"input":\[/g)?.length, 2, 'both processes that hold the master saved its unread input (one after the other)');
    await kill9Session(s1, ckpt, 'the launched run');
    let run = s1;
    for (const stage of [1, 2]) {
      const r = scope.restart({ dir: ckpt, label: `restart ${stage} of pty_input partial` });
      await r.waitFor(() => r.lines.some((l) => l.startsWith('waiting')), 'the restarted program waiting');
      if (stage === 1) {
        await checkpoint(ckpt);
        await kill9Session(r, ckpt, 'the first restart');
      }
      run = r;
    }
    fs.writeFileSync(flag, '');
    const exit = await run.waitExit();
    assert.is(exit.code, 0, run.describe());
    assert.equal(typed(run), ["read b'h\\x13\\nello\\n'", "echo b'lo\\r\\n'"], run.describe());
  } finally {
    await scope.cleanup();
  }
});

test('unread input in non-canonical mode and a partial line: a checkpoint that resumes leaves them as they were (no echo, nothing lost); raw input comes back after kill -9 and a restart', async () => {
  const scope = new Scope('term-rawinput');
  try {
    for (const mode of ['partial', 'raw']) {
      const ckpt = scope.ckptDir(`ckpt-${mode}`);
      const flag = path.join(scope.root, `go-${mode}`);
      const prog = [python3(), path.join(EXAMPLES, 'pty_input.py'), flag, mode];
      const s1 = scope.launch({ dir: ckpt, program: prog, label: `ckrun pty_input ${mode}` });
      await s1.waitFor(() => s1.lines.includes('written'), 'the input typed into the master');
      await checkpoint(ckpt);
      await checkpoint(ckpt);
      const want = mode === 'raw' ? ["read b'hello\\n'", "echo b''"] : ["read b'h\\x13\\nello\\n'", "echo b'lo\\r\\n'"];
      if (mode === 'raw') {
        await kill9Session(s1, ckpt, 'the launched run');
        const r = scope.restart({ dir: ckpt, label: 'restart of pty_input raw' });
        await r.waitFor(() => r.lines.some((l) => l.startsWith('waiting')), 'the restarted program waiting');
        fs.writeFileSync(flag, '');
        assert.is((await r.waitExit()).code, 0, r.describe());
        assert.equal(typed(r), want, r.describe());
      } else {
        fs.writeFileSync(flag, '');
        assert.is((await s1.waitExit()).code, 0, s1.describe());
        assert.equal(typed(s1), want, s1.describe());
      }
    }
  } finally {
    await scope.cleanup();
  }
});

test('util-linux script -q -c: its pty and its child come back; every line once, in order; twice', async () => {
  const scope = new Scope('term-script');
  try {
    const n = 300;
    const loop = `for i in $(seq 1 ${n}); do echo line $i; sleep 0.02; done`;
    const lines = (p: { lines: string[] }): string[] => p.lines.map((l) => l.replace(/\r$/, '')).filter((l) => l.startsWith('line '));
    let seen: string[] = [];
    await treeScenario(scope, {
      name: 'script',
      program: ['/usr/bin/script', '-q', '-e', '-c', `bash -c '${loop}'`, '/dev/null'],
      cwd: scope.dir('work'),
      minProcesses: 2,
      async progress({ proc }) {
        const from = lines(proc).length;
        await until(proc, () => lines(proc).length >= from + 20, '20 more lines');
      },
      verify([s1, r1, r2]) {
        seen = lines(r2);
        const last = Number(seen[seen.length - 1]?.split(' ')[1]);
        assert.is(last, n, r2.describe());
        const nums = seen.map((l) => Number(l.split(' ')[1]));
        for (let i = 1; i < nums.length; i++) assert.is(nums[i], nums[i - 1]! + 1, `line ${nums[i - 1]} then ${nums[i]}: every line once, in order`);
        for (const p of [s1, r1]) assert.ok(lines(p).length > 0, p.describe());
      },
    });
  } finally {
    await scope.cleanup();
  }
});

test("a job started in a terminal (one open terminal as stdin, stdout and stderr), left running after the login ended, restarted with stdout and stderr in files: each goes to its own file, from the program and its children; twice", async () => {
  const scope = new Scope('term-stdio-split');
  try {
    const work = scope.dir('work');
    const ckpt = scope.ckptDir('ck');
    const count = path.join(work, 'count');
    fs.writeFileSync(path.join(work, 'job.sh'), `trap '' HUP\ni=0\nwhile :; do i=$((i+1)); /bin/echo "out $i"; /bin/echo "err $i" >&2; echo $i > ${count}; sleep 0.05; done\n`);
    const steps = (): number => Number(fs.existsSync(count) ? fs.readFileSync(count, 'utf8').trim() || 0 : 0);
    let p = scope.track(new Proc('setsid', ['/usr/bin/script', '-qfc', `${NODE} ${CKRUN} --dir ${ckpt} -- bash ${path.join(work, 'job.sh')}`, '/dev/null'], { label: 'script: ckrun job' }));
    await until(p, () => steps() >= 10, 'the job to run');
    for (const round of [1, 2]) {
      await checkpoint(ckpt);
      // the login ends: the terminal hangs up, the job runs on; then ckrun (found by its --dir) is killed
      if (round === 1) process.kill(p.pid, 'SIGKILL');
      const ckrunPid = fs
        .readdirSync('/proc')
        .filter((d) => /^\d+$/.test(d))
        .find((d) => {
          try {
            const argv = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
            return argv.includes(CKRUN) && argv.includes(ckpt);
          } catch {
            return false;
          }
        });
      assert.ok(ckrunPid, 'ckrun runs on after the terminal hung up');
      const ckrunProc = round === 1 ? scope.track(new Proc('tail', [`--pid=${ckrunPid}`, '-f', '/dev/null'], { label: 'waits for ckrun' })) : p;
      process.kill(Number(ckrunPid), 'SIGKILL');
      await kill9Session(ckrunProc, ckpt, `stdio split, round ${round}`);
      const out = path.join(work, `out${round}`);
      const err = path.join(work, `err${round}`);
      p = scope.track(new Proc('sh', ['-c', `exec ${NODE} ${CKRUN} restart --dir ${ckpt} < /dev/null > ${out} 2> ${err}`], { label: `ckrun restart ${round}` }));
      const at = steps();
      await until(p, () => steps() >= at + 10, `the restarted job to run on (round ${round})`);
      // the second time the job's stdout and stderr are the files of the first restart: it goes on in them, from the checkpoint's offset
      for (const [file, word] of [[path.join(work, 'out1'), 'out'], [path.join(work, 'err1'), 'err']] as const) {
        const got = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l && !l.startsWith('ckrun'));
        assert.ok(got.length >= 5 && got.every((l) => new RegExp(`^${word} \\d+$`).test(l)), `${file} has the job's ${word} lines only:\n${got.slice(0, 10).join('\n')}`);
        const nums = got.map((l) => Number(l.split(' ')[1]));
        for (let i = 1; i < nums.length; i++) assert.is(nums[i], nums[i - 1]! + 1, `${file}: ${nums[i - 1]} then ${nums[i]}, every line once`);
      }
      if (round === 2) assert.is(fs.readFileSync(out, 'utf8') + fs.readFileSync(err, 'utf8'), '', "the second restart's own stdio get nothing");
    }
    await kill9Session(p, ckpt, 'stdio split, end');
  } finally {
    await scope.cleanup();
  }
});

test.run();
