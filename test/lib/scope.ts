// One test's temporary directories and processes, all removed and killed
// at its end.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { launch, restart, sessionSocketName } from './ckrun.js';
import { T_GONE } from './paths.js';
import type { Proc } from './proc.js';
import { descendants, findProcesses, freezeTrees, killFrozen, killTree, type ProcInfo } from './processes.js';

/**
 * Temporary directories under os.tmpdir() and processes of one test, all
 * removed/killed by cleanup() (also the programs ckrun started, found by
 * their descent, their command line, or their session socket).
 */
export class Scope {
  readonly dirs: string[] = [];
  readonly procs: Proc[] = [];
  readonly ckptDirs: string[] = [];
  readonly root: string;

  constructor(name: string) {
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), `ckrun-test-${name.replace(/[^a-z0-9]+/gi, '-')}-`));
    this.dirs.push(this.root);
  }

  /** A fresh empty directory inside this scope. */
  dir(name: string): string {
    const d = path.join(this.root, name);
    fs.mkdirSync(d, { recursive: true });
    return d;
  }

  /** A directory for checkpoints (tracked so that cleanup finds its session's processes). */
  ckptDir(name = 'ckpt'): string {
    const d = this.dir(name);
    this.ckptDirs.push(d);
    return d;
  }

  track<T extends Proc>(p: T): T {
    this.procs.push(p);
    return p;
  }

  launch(o: Parameters<typeof launch>[0]): Proc {
    return this.track(launch(o));
  }

  restart(o: Parameters<typeof restart>[0]): Proc {
    return this.track(restart(o));
  }

  /** kill -9 the process tree of p, and wait until its output is collected. */
  async kill9(p: Proc): Promise<number[]> {
    const pids = await killTree(p.pid);
    await p.waitExit(T_GONE);
    return pids;
  }

  /**
   * Processes (other than tracked ckruns) that belong to this scope's
   * sessions: named by their command line or environment, and everything
   * below those (a daemon's workers may clear their environment and
   * retitle themselves, as nginx's do).
   */
  strays(): ProcInfo[] {
    const socks = this.ckptDirs.filter((d) => fs.existsSync(d)).map((d) => `CKRUN_SOCK=${sessionSocketName(d)}`);
    const named = findProcesses((p) => {
      if (p.cmdline.some((a) => a.includes(this.root))) return true;
      if (!socks.length) return false;
      try {
        const env = fs.readFileSync(`/proc/${p.pid}/environ`, 'utf8').split('\0');
        return env.some((e) => socks.includes(e));
      } catch {
        return false;
      }
    });
    const below = new Set(named.flatMap((p) => descendants(p.pid)));
    return [...named.filter((p) => !below.has(p.pid)), ...findProcesses((p) => below.has(p.pid))];
  }

  async cleanup(): Promise<void> {
    for (const p of this.procs) if (p.running || descendants(p.pid).length) await killTree(p.pid);
    let strays: ProcInfo[] = [];
    try {
      strays = this.strays();
    } catch {
      /* best effort */
    }
    if (strays.length) await killFrozen(freezeTrees(strays.map((s) => s.pid)));
    if (!process.env.CKRUN_TEST_KEEP)
      for (const d of this.dirs) fs.rmSync(d, { recursive: true, force: true });
    else process.stderr.write(`kept ${this.root}\n`);
  }
}
