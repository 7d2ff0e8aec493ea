#!/usr/bin/env node
// Damage campaign (issue 9, "Figures"): random single-bit flips, byte
// overwrites and truncations over the header, metadata, data and manifest
// of the newest generation of a single-process C program (examples
// counter), a python3 program (examples/loop.py) and a family
// (examples/family.c), each then restarted with `bin/ckrun restart --dir`
// (the command users run; as root its restore host restores before node
// starts), with a timeout. Counts how each ends:
//
//   refused       exit status != 0, a message, no signal, nothing ran, nothing left
//   fallback      the program ran from the older generation, and stderr said so
//   silent        the program ran from the damaged generation without a word
//                 (split: the damage is in bytes no check covers, the unused
//                 padding between chunks of the data area, or it is not)
//   crashed       ckrun died of a signal, or said "internal error"
//   hung          neither ran nor ended within the timeout
//   left          a process of the session was still there after ckrun ended
//                 (counted apart: after a restart that ran was ended by
//                 kill -9 of ckrun, a process of it still there 3 s later)
//
// Not part of npm test (minutes). Run as root after `npm run build` (or
// npx tsc): node scripts/corrupt-campaign.mjs [TRIALS_PER_PROGRAM] [SEED]
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { readHeaderBlock, runsOf, readImage } = await import(path.join(ROOT, 'dist/test/lib/images.js'));
const { cborDecode } = await import(path.join(ROOT, 'dist/test/lib/cbor.js'));
const { sessionByEnv } = await import(path.join(ROOT, 'dist/test/lib/tree.js'));

const TRIALS = Number(process.argv[2] ?? 100);
let seed = Number(process.argv[3] ?? 20251206);
const TIMEOUT_MS = 20_000;
const CKRUN = path.join(ROOT, 'bin', 'ckrun');
const CKRUN_JS = path.join(ROOT, 'bin', 'ckrun.js');

function rand() {
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  seed >>>= 0;
  return seed / 0x100000000;
}
const pick = (a) => a[Math.floor(rand() * a.length)];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ckrun-campaign-'));

/** Runs ckrun (a launch), takes two checkpoints when ready() says so, kills it; returns the checkpoint directory. */
async function take(name, argv, cwd, ready1, ready2) {
  const ckpt = path.join(work, `${name}-pristine`);
  fs.mkdirSync(ckpt);
  const p = spawn(process.execPath, [CKRUN_JS, '--dir', ckpt, '--', ...argv], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', () => {});
  const until = async (pred) => {
    for (let i = 0; i < 600 && !pred(out.split('\n').length); i++) await sleep(50);
  };
  await until(ready1);
  execFileSync(process.execPath, [CKRUN_JS, 'checkpoint', '--dir', ckpt]);
  await until(ready2);
  execFileSync(process.execPath, [CKRUN_JS, 'checkpoint', '--dir', ckpt]);
  p.kill('SIGKILL');
  await sleep(500);
  for (const pid of sessionByEnv(ckpt)) process.kill(pid, 'SIGKILL');
  return ckpt;
}

/** The manifest's processes (version 2: framed). */
function manifestOf(gen) {
  let v = cborDecode(fs.readFileSync(path.join(gen, 'manifest.cbor'))).value;
  if (Array.isArray(v)) v = cborDecode(v[0]).value;
  return v;
}

/** Byte ranges of an image file by area; `covered`: the chunks the metadata names (page runs and saved data). */
function areas(file) {
  const h = readHeaderBlock(file).header;
  const size = fs.statSync(file).size;
  const meta = [Number(h.meta_offset), size];
  const data = [4096, Number(h.meta_offset)];
  const covered = [];
  try {
    for (const r of runsOf(readImage(file))) if (r.crc >= 0) covered.push([r.offset, r.offset + r.pages * 4096]);
  } catch {
    // unreadable: treated as covered
  }
  return { header: [0, 4096], meta, data, covered };
}

function damage(gen) {
  const procs = manifestOf(gen).processes;
  const area = pick(['header', 'metadata', 'data', 'manifest']);
  const how = pick(['bit flip', 'byte overwrite', 'truncation']);
  let file;
  let range;
  let covered;
  let unused = false;
  if (area === 'manifest') {
    file = path.join(gen, 'manifest.cbor');
    range = [0, fs.statSync(file).size];
  } else {
    file = path.join(gen, String(pick(procs).image));
    const a = areas(file);
    range = area === 'header' ? a.header : area === 'metadata' ? a.meta : a.data;
    if (range[1] <= range[0]) range = a.meta;
    covered = a.covered;
  }
  const at = range[0] + Math.floor(rand() * (range[1] - range[0]));
  const b = fs.readFileSync(file);
  let changed;
  if (how === 'truncation') changed = b.subarray(0, at);
  else {
    changed = Buffer.from(b);
    const old = changed[at];
    changed[at] = how === 'bit flip' ? old ^ (1 << Math.floor(rand() * 8)) : Math.floor(rand() * 256);
    if (changed[at] === old) changed[at] ^= 0x80;
    if (area === 'data' && covered && !covered.some(([lo, hi]) => at >= lo && at < hi)) unused = true;
  }
  // a hard link (an older generation's image an incremental one refers to) is not what is damaged: the file is replaced
  fs.rmSync(file);
  fs.writeFileSync(file, changed, { mode: 0o600 });
  return { area, how, file: path.basename(file), at, unused };
}

/** Processes of a session: by the checkpoint directory in their environment (the restored ones carry the original's). */
function leftovers(dirs) {
  return [...new Set(dirs.flatMap((d) => (fs.existsSync(d) ? sessionByEnv(d) : [])))];
}

/** One restart of the damaged copy: how it ended, and what it left. */
async function restartOnce(subject, dir, args, d) {
  const p = spawn(CKRUN, ['restart', ...args], { cwd: subject.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout.on('data', (x) => (out += x));
  p.stderr.on('data', (x) => (err += x));
  const exited = new Promise((r) => p.once('exit', (code, signal) => r({ code, signal })));
  let st;
  const t0 = Date.now();
  while (!st && Date.now() - t0 < TIMEOUT_MS) {
    st = await Promise.race([exited, sleep(50).then(() => undefined)]);
    if (!st && out.trim().length > 0) break;
  }
  const ran = out.trim().length > 0;
  let outcome;
  if (ran) outcome = /restarting from \S+\/1 instead/.test(err) ? 'fallback' : d.unused ? 'silent (unused padding)' : 'silent';
  else if (!st) outcome = 'hung';
  else if (st.signal || /internal error/.test(err)) outcome = 'crashed';
  else if (st.code !== 0 && err.trim()) outcome = 'refused';
  else outcome = 'other';
  if (!st) {
    // kill -9 of ckrun takes the session with it (tested elsewhere); whatever is left is counted
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {}
    await exited;
  }
  // (a program that ran was ended by kill -9 of ckrun: its processes end with their session, which takes a moment)
  await sleep(300);
  let left = leftovers([dir, subject.origin]);
  for (let i = 0; i < 30 && left.length; i++) {
    await sleep(100);
    left = leftovers([dir, subject.origin]);
  }
  const what = left.map((pid) => {
    try {
      const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      return `${pid} ${st.slice(st.indexOf('('), st.lastIndexOf(')') + 3)}`;
    } catch {
      return `${pid} (gone)`;
    }
  });
  for (const pid of left) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
  return { outcome, left: left.length > 0 && !ran, leftAfterKill: left.length > 0 && ran, leftWhat: what.join(', '), err: err.trim().split('\n').slice(-2).join(' | ') };
}

/** One damage, then `restart DIR/2` (named: never replaced) and `restart --dir DIR` (may fall back, saying so). */
async function trial(subject, n) {
  const dir = path.join(work, `${subject.name}-${n}`);
  execFileSync('cp', ['-a', subject.pristine, dir]);
  const d = damage(path.join(dir, '2'));
  const named = await restartOnce(subject, dir, [path.join(dir, '2')], d);
  const byDir = await restartOnce(subject, dir, ['--dir', dir], d);
  fs.rmSync(dir, { recursive: true, force: true });
  return [
    { ...d, mode: 'named', ...named },
    { ...d, mode: '--dir', ...byDir },
  ];
}

async function main() {
  if (process.geteuid() !== 0) throw new Error('run as root (the fast restart in C takes root)');
  const bin = path.join(work, 'bin');
  fs.mkdirSync(bin);
  execFileSync('gcc', ['-O2', '-o', path.join(bin, 'counter'), path.join(ROOT, 'examples/counter.c')]);
  execFileSync('gcc', ['-O2', '-pthread', '-o', path.join(bin, 'family'), path.join(ROOT, 'examples/family.c')]);
  fs.copyFileSync(path.join(ROOT, 'examples/loop.py'), path.join(bin, 'loop.py'));
  const cwd = path.join(work, 'cwd');
  fs.mkdirSync(cwd);
  const subjects = [
    { name: 'counter', argv: [path.join(bin, 'counter'), '--steps', '1000000'], r1: (l) => l > 20, r2: (l) => l > 40 },
    { name: 'python3', argv: ['python3', path.join(bin, 'loop.py')], r1: (l) => l > 10, r2: (l) => l > 30 },
    { name: 'family', argv: [path.join(bin, 'family'), '--steps', '1000000'], r1: (l) => l > 20, r2: (l) => l > 40 },
  ];
  for (const s of subjects) {
    s.origin = await take(s.name, s.argv, cwd, s.r1, s.r2);
    s.pristine = s.origin;
    s.cwd = cwd;
  }
  const results = [];
  for (let n = 0; n < TRIALS; n++)
    for (const s of subjects)
      for (const r of await trial(s, n)) {
        results.push({ subject: s.name, ...r });
        if (['crashed', 'hung', 'silent', 'other'].includes(r.outcome) || r.left || r.leftAfterKill)
          process.stderr.write(
            `${s.name} #${n} ${r.mode}: ${r.outcome}${r.left ? ' (left a process)' : ''}${r.leftAfterKill ? ` (after kill -9 of the running restart: ${r.leftWhat})` : ''}: ` +
              `${r.how} of ${r.area} of ${r.file} at ${r.at}: ${r.err}\n`,
          );
      }
  const outcomes = ['refused', 'fallback', 'silent', 'silent (unused padding)', 'crashed', 'hung', 'other'];
  const rows = [];
  rows.push(`| program | restart | trials | ${outcomes.join(' | ')} | left a process | left after kill -9 of a running restart |`);
  rows.push(`| --- | --- | --- | ${outcomes.map(() => '---').join(' | ')} | --- | --- |`);
  for (const mode of ['named', '--dir'])
    for (const s of [...subjects.map((x) => x.name), 'all']) {
      const rs = results.filter((r) => r.mode === mode && (s === 'all' || r.subject === s));
      rows.push(
        `| ${s} | ${mode === 'named' ? 'DIR/2' : '--dir DIR'} | ${rs.length} | ${outcomes.map((o) => rs.filter((r) => r.outcome === o).length).join(' | ')} | ${rs.filter((r) => r.left).length} | ${rs.filter((r) => r.leftAfterKill).length} |`,
      );
    }
  const byArea = ['header', 'metadata', 'data', 'manifest'].map((a) => {
    const rs = results.filter((r) => r.area === a && r.mode === 'named');
    return `${a}: ${rs.length} (${outcomes.map((o) => [o, rs.filter((r) => r.outcome === o).length]).filter(([, k]) => k).map(([o, k]) => `${k} ${o}`).join(', ')})`;
  });
  const byHow = ['bit flip', 'byte overwrite', 'truncation'].map((h) => `${h}: ${results.filter((r) => r.how === h && r.mode === 'named').length}`);
  process.stdout.write(`${rows.join('\n')}\n\ndamage (per trial): ${byArea.join('; ')}\nkinds: ${byHow.join(', ')}\n`);
  fs.writeFileSync(path.join(work, 'results.json'), JSON.stringify(results, null, 1));
  process.stdout.write(`details: ${path.join(work, 'results.json')}\n`);
}

await main();
