// Under a real Slurm (Debian's slurm-wlm: munged, slurmctld and slurmd of
// this test's own, configured in its temporary directory, on ports of its
// own), the example job script examples/slurm/ckrun-job.sh: its job is cut
// off twice, requeued, and finishes with the output of an uninterrupted run,
// in one continuous output file.
//  - the warning before a time limit (--signal=B:USR1@N): Slurm's signal to
//    the batch shell only, sent here by `scancel --batch --signal=USR1`,
//    which delivers it the same way: ckrun checkpoints, ends the program
//    (status 75), and the job requeues itself;
//  - preemption-like `scontrol requeue`: SIGTERM to every process of the
//    job at once: ckrun checkpoints on it while the shim holds it back from
//    the program (resume.test.ts shows the program never sees it); the
//    requeued job continues from the newest checkpoint, the output file cut
//    back to it.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { exampleProgram } from './lib/examples.js';
import { generations } from './lib/images.js';
import { CKRUN_SH, EXAMPLES, T_EXIT, T_STEP } from './lib/paths.js';
import { runNative, sleep } from './lib/proc.js';
import { Scope } from './lib/scope.js';
import { freePort } from './lib/net.js';

const run = promisify(execFile);
const STEPS = ['--steps', '700'];
const JOB_SCRIPT = path.join(EXAMPLES, 'slurm', 'ckrun-job.sh');
const NODE_NAME = 'ckrun-test-node';

/** A TCP port nothing listens on now. */
function requireCommands(): void {
  const missing = ['munged', 'mungekey', 'slurmctld', 'slurmd', 'sbatch', 'scontrol', 'scancel', 'sinfo'].filter(
    (c) => ![...(process.env['PATH'] ?? '/usr/bin').split(':'), '/usr/sbin', '/sbin'].some((d) => fs.existsSync(path.join(d, c))),
  );
  if (missing.length)
    assert.unreachable(`the slurm test needs ${missing.join(', ')}: apt-get install munge slurmctld slurmd slurm-client (test/lib/requirements.ts)`);
}

/** munged, slurmctld and slurmd of the test's own, in `dir`; stop() ends them. */
class Cluster {
  readonly env: NodeJS.ProcessEnv;
  private readonly daemons: ChildProcess[] = [];

  constructor(readonly dir: string) {
    // the daemons are in /usr/sbin, which an ordinary PATH may lack
    this.env = { ...process.env, PATH: `${process.env['PATH'] ?? '/usr/bin:/bin'}:/usr/sbin:/sbin`, SLURM_CONF: path.join(dir, 'slurm.conf') };
  }

  async start(): Promise<void> {
    const d = this.dir;
    for (const sub of ['munge', 'state', 'spool']) fs.mkdirSync(path.join(d, sub), { mode: 0o700 });
    await run('/usr/sbin/mungekey', ['--create', `--keyfile=${d}/munge/munge.key`]);
    const [ctldPort, slurmdPort] = [await freePort(), await freePort()];
    const host = os.hostname().split('.')[0];
    // no cgroups (a container may have none to give): processes are tracked
    // by their parents; cred_expire=5 and sched_interval=1 let a requeued
    // job run again after ~6 s instead of two minutes
    fs.writeFileSync(
      path.join(d, 'slurm.conf'),
      [
        'ClusterName=ckrun-test',
        `SlurmctldHost=${host}(127.0.0.1)`,
        'SlurmUser=root',
        'SlurmdUser=root',
        `SlurmctldPort=${ctldPort}`,
        `SlurmdPort=${slurmdPort}`,
        'AuthType=auth/munge',
        'CredType=cred/munge',
        `AuthInfo=socket=${d}/munge/sock,cred_expire=5`,
        `StateSaveLocation=${d}/state`,
        `SlurmdSpoolDir=${d}/spool`,
        `SlurmctldPidFile=${d}/slurmctld.pid`,
        `SlurmdPidFile=${d}/slurmd.pid`,
        `SlurmctldLogFile=${d}/slurmctld.log`,
        `SlurmdLogFile=${d}/slurmd.log`,
        'ProctrackType=proctrack/linuxproc',
        'TaskPlugin=task/none',
        'JobAcctGatherType=jobacct_gather/none',
        'AccountingStorageType=accounting_storage/none',
        'SchedulerType=sched/builtin',
        'SchedulerParameters=sched_interval=1',
        'SelectType=select/cons_tres',
        'SelectTypeParameters=CR_Core',
        'MpiDefault=none',
        'SwitchType=switch/none',
        'ReturnToService=2',
        'JobRequeue=1',
        'KillWait=5',
        'MinJobAge=300',
        `NodeName=${NODE_NAME} NodeHostname=${host} NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN`,
        `PartitionName=ckrun Nodes=${NODE_NAME} Default=YES MaxTime=INFINITE State=UP`,
        '',
      ].join('\n'),
    );
    this.daemon('munged', ['-F', '-f', `--socket=${d}/munge/sock`, `--key-file=${d}/munge/munge.key`, `--pid-file=${d}/munge/pid`, `--seed-file=${d}/munge/seed`, `--log-file=${d}/munge/log`]);
    await this.until(() => fs.existsSync(`${d}/munge/sock`), 'munged to listen');
    this.daemon('slurmctld', ['-D', '-f', `${d}/slurm.conf`]);
    this.daemon('slurmd', ['-D', '-N', NODE_NAME, '-f', `${d}/slurm.conf`]);
    await this.until(async () => (await this.cmd('sinfo', ['-h', '-N', '-o', '%T']).catch(() => '')).trim() === 'idle', 'the node to be idle');
  }

  private daemon(file: string, args: string[]): void {
    const p = spawn(path.join('/usr/sbin', file), args, { env: this.env, stdio: ['ignore', fs.openSync(path.join(this.dir, `${file}.out`), 'a'), fs.openSync(path.join(this.dir, `${file}.out`), 'a')] });
    p.on('error', () => undefined);
    this.daemons.push(p);
  }

  async cmd(file: string, args: string[]): Promise<string> {
    return (await run(file, args, { env: this.env })).stdout;
  }

  /** The daemons' logs, for a failure's message. */
  logs(): string {
    return ['munged.out', 'slurmctld.out', 'slurmd.out', 'slurmctld.log', 'slurmd.log']
      .map((f) => {
        const p = path.join(this.dir, f);
        return fs.existsSync(p) ? `--- ${f}\n${fs.readFileSync(p, 'utf8').split('\n').slice(-15).join('\n')}` : '';
      })
      .join('\n');
  }

  async until(cond: () => boolean | Promise<boolean>, what: string, ms = T_STEP): Promise<void> {
    const end = Date.now() + ms;
    while (!(await cond())) {
      const dead = this.daemons.find((p) => p.exitCode !== null || p.signalCode !== null);
      if (dead) assert.unreachable(`${dead.spawnfile} exited (${dead.exitCode ?? dead.signalCode}) while waiting for ${what}\n${this.logs()}`);
      if (Date.now() > end) assert.unreachable(`waited ${ms / 1000} s for ${what}\n${this.logs()}`);
      await sleep(100);
    }
  }

  async stop(): Promise<void> {
    for (const p of [...this.daemons].reverse()) {
      if (p.exitCode !== null || p.signalCode !== null) continue;
      const gone = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await Promise.race([gone, sleep(10_000)]);
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    }
  }
}

/** JobState and Restarts of a job. */
async function jobState(c: Cluster, id: string): Promise<{ state: string; restarts: number; exit: string }> {
  const out = await c.cmd('scontrol', ['show', 'job', id]);
  return {
    state: /JobState=(\S+)/.exec(out)?.[1] ?? '?',
    restarts: Number(/Restarts=(\d+)/.exec(out)?.[1] ?? -1),
    exit: /ExitCode=(\S+)/.exec(out)?.[1] ?? '?',
  };
}

function linesOf(file: string): string[] {
  const lines = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n') : [];
  lines.pop();
  return lines;
}

test('a Slurm job under ckrun --resume is cut off by the time-limit warning and by scontrol requeue, requeued, and ends with the output of an uninterrupted run', async () => {
  requireCommands();
  const scope = new Scope('slurm');
  const cluster = new Cluster(scope.dir('slurm'));
  try {
    const [ref] = await Promise.all([runNative(exampleProgram('counter', STEPS)), cluster.start()]);
    assert.is(ref.code, 0, ref.stderr);
    const jobDir = scope.dir('job');
    const ckpt = path.join(jobDir, 'ckpt');
    scope.ckptDirs.push(ckpt);
    const out = path.join(jobDir, 'job.out');
    const err = path.join(jobDir, 'job.err');
    const id = (
      await run('sbatch', ['--parsable', `--output=${out}`, `--error=${err}`, `--chdir=${jobDir}`, JOB_SCRIPT, ...exampleProgram('counter', STEPS)], {
        env: { ...cluster.env, CKRUN: CKRUN_SH, CKPT: ckpt, CKRUN_INTERVAL: '0.5' },
      })
    ).stdout.trim();
    const why = async (): Promise<string> =>
      `job ${id}: ${JSON.stringify(await jobState(cluster, id))}\n--- job.err\n${fs.existsSync(err) ? fs.readFileSync(err, 'utf8') : ''}\n${cluster.logs()}`;
    const until = async (cond: (s: Awaited<ReturnType<typeof jobState>>) => boolean, what: string): Promise<void> => {
      const end = Date.now() + T_EXIT;
      for (;;) {
        const s = await jobState(cluster, id);
        if (cond(s)) return;
        if (/FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE/.test(s.state) && !/REQUEUE/.test(s.state))
          assert.unreachable(`job ${id} ended ${s.state} (exit ${s.exit}) while waiting for ${what}\n${await why()}`);
        if (Date.now() > end) assert.unreachable(`waited ${T_EXIT / 1000} s for ${what}\n${await why()}`);
        await sleep(100);
      }
    };
    const lines = async (n: number, what: string): Promise<void> => {
      const end = Date.now() + T_STEP;
      while (linesOf(out).length < n) {
        if (Date.now() > end) assert.unreachable(`${out} never reached ${n} lines (${what})\n${await why()}`);
        await sleep(50);
      }
    };

    // 1. the warning before the time limit: USR1 to the batch shell only
    await until((s) => s.state === 'RUNNING', 'the job to run');
    await lines(150, 'first run');
    await cluster.cmd('scancel', ['--batch', '--signal=USR1', id]);
    await until((s) => s.restarts >= 1, 'the job to requeue itself after the checkpoint');
    const stopGen = Math.max(...generations(ckpt));

    // 2. preemption-like: SIGTERM to every process of the job at once
    await until((s) => s.state === 'RUNNING' && s.restarts === 1, 'the requeued job to run');
    await lines(linesOf(out).length + 150, 'the first requeue');
    const end = Date.now() + T_STEP;
    while (Math.max(...generations(ckpt)) <= stopGen) {
      if (Date.now() > end) assert.unreachable(`no --interval checkpoint after the resume\n${await why()}`);
      await sleep(50);
    }
    await cluster.cmd('scontrol', ['requeue', id]);
    await until((s) => s.restarts >= 2, 'the requeue');

    await until((s) => s.state === 'COMPLETED', 'the job to complete');
    const s = await jobState(cluster, id);
    assert.is(s.exit, '0:0', await why());
    assert.is(s.restarts, 2, await why());
    const got = linesOf(out);
    const i = got.findIndex((l, k) => l !== ref.lines[k]);
    assert.ok(
      i < 0 && got.length === ref.lines.length,
      `the job's output differs from the uninterrupted run at line ${i < 0 ? got.length : i}: ${JSON.stringify(got[i])} vs ${JSON.stringify(ref.lines[i])}\n${await why()}`,
    );
  } finally {
    await cluster.cmd('scancel', ['--full', '--signal=KILL', '-u', 'root']).catch(() => undefined);
    await scope.cleanup();
    await cluster.stop();
  }
});

test.run();
