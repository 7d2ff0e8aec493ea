// Run by `npm test` before the suite: makes sure the machine has what the
// tests need (test/lib/requirements.ts). As root, missing Debian packages
// are installed with apt-get; otherwise the run stops at once and names
// them. A missing prerequisite never turns into a test that passes by
// doing nothing.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { REQUIREMENTS, type Requirement } from './requirements.js';

function onPath(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v '${command}'`], { stdio: 'ignore' }).status === 0;
}

function missing(): Requirement[] {
  return REQUIREMENTS.filter((r) => (r.file !== undefined ? !existsSync(r.file) : !onPath(r.command)));
}

function install(packages: string[]): void {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  process.stderr.write(`test setup: installing ${packages.join(' ')} (apt-get)\n`);
  execFileSync('apt-get', ['update', '-qq'], { stdio: ['ignore', 'ignore', 'inherit'], env });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env,
  });
}

function describe(rs: Requirement[]): string {
  return rs.map((r) => `  ${r.command} (Debian package ${r.package}; for ${r.usedBy})`).join('\n');
}

function main(): number {
  let lacking = missing();
  if (lacking.length === 0) return 0;
  const packages = [...new Set(lacking.map((r) => r.package))];
  if (process.geteuid?.() !== 0) {
    process.stderr.write(
      `test setup: the suite needs these commands, which are missing:\n${describe(lacking)}\n` +
        `install them (apt-get install ${packages.join(' ')}) or run npm test as root, which installs them\n`,
    );
    return 1;
  }
  try {
    install(packages);
  } catch (e) {
    process.stderr.write(`test setup: apt-get install ${packages.join(' ')} failed: ${(e as Error).message}\n`);
    return 1;
  }
  lacking = missing();
  if (lacking.length) {
    process.stderr.write(`test setup: still missing after apt-get install:\n${describe(lacking)}\n`);
    return 1;
  }
  return 0;
}

process.exitCode = main();
