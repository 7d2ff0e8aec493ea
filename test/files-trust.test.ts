// Written files and another user's checkpoint (issue 12 with issue 9's
// laws): a generation belongs to its user, and so does what a restart
// writes. User nobody checkpoints a program that writes a file of theirs,
// then points the generation's saved file at a file of root's; root
// restarts it with --trust-owner: refused before any process exists, and
// root's file is untouched.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readRawManifest, writeRawManifest } from './lib/craft.js';
import type { Cbor } from './lib/cbor.js';
import { Proc } from './lib/proc.js';
import { Scope } from './lib/scope.js';
import { asUser, asUserArgv, NOBODY, NOGROUP, sharedCkrun } from './lib/users.js';

// Debian's python3 (pyenv's under /root is not nobody's to run)
const PYTHON = '/usr/bin/python3';

test("user nobody's generation pointing its saved file at root's file: root's restart with --trust-owner refuses and writes nothing", async () => {
  if (process.geteuid?.() !== 0) throw new Error('this test runs a program as user nobody and restarts it as root: run npm test as root');
  if (!fs.existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: this test needs it (apt-get install python3)`);
  const shared = sharedCkrun();
  const scope = new Scope('files-trust');
  try {
    fs.chmodSync(scope.root, 0o755);
    const work = scope.dir('work');
    fs.chownSync(work, NOBODY, NOGROUP);
    const ck = path.join(work, 'ck');
    scope.ckptDirs.push(ck);
    const data = path.join(work, 'data.bin');
    const victim = path.join(scope.root, 'root-file');
    fs.writeFileSync(victim, 'R'.repeat(8192), { mode: 0o644 });
    const job = `import os, time\nfd = os.open('${data}', os.O_RDWR | os.O_CREAT, 0o600)\nos.pwrite(fd, b'N' * 8192, 0)\nprint('ready', flush=True)\nwhile True:\n    os.pwrite(fd, b'n', 0)\n    time.sleep(0.05)\n`;
    fs.writeFileSync(path.join(work, 'job.py'), job, { mode: 0o644 });
    const [cmd, ...args] = asUserArgv(NOBODY, NOGROUP, `cd ${work} && exec node ${shared.ckrunJs} --dir ${ck} -- ${PYTHON} ${path.join(work, 'job.py')}`);
    const s = scope.track(new Proc(cmd!, args, { label: 'ckrun job (as nobody)' }));
    await s.waitForLine('ready');
    const gen = (await asUser(NOBODY, NOGROUP, `node ${shared.ckrunJs} checkpoint --dir ${ck}`)).stdout.trim();
    assert.match(gen, /\/1$/, `nobody's checkpoint: ${gen}`);
    await scope.kill9(s);

    // the generation's owner rewrites where its saved file goes
    const { map, framed } = readRawManifest(gen);
    const files = map['files'] as { [k: string]: Cbor };
    const saved = files['saved'] as { [k: string]: Cbor }[];
    const entry = saved.find((f) => f['path'] === data);
    assert.ok(entry, `the generation saved ${data}`);
    entry!['path'] = victim;
    entry!['uid'] = 0; // and says it is root's, as that file is
    writeRawManifest(gen, map, framed);
    fs.chownSync(path.join(gen, 'manifest.cbor'), NOBODY, NOGROUP);

    const r = scope.restart({ image: gen, extra: ['--trust-owner', '--dir', scope.ckptDir('root-ck')], label: "root's restart of nobody's doctored generation" });
    const st = await r.waitExit();
    assert.is.not(st.code, 0, r.describe());
    assert.match(r.stderr, /not a file of uid 65534/, r.describe());
    assert.is(fs.readFileSync(victim, 'utf8'), 'R'.repeat(8192), "root's file is untouched");
  } finally {
    await scope.cleanup();
  }
});

test.run();
