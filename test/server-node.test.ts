// A node HTTP server that counts requests in memory (examples/http-counter.js):
// after a restart it answers on the same port with the count it had, and
// goes on counting; twice. A keep-alive client connected at checkpoint
// time loses its connection and simply connects again.
import * as http from 'node:http';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EXAMPLES, NODE } from './lib/paths.js';
import { checkpoint } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';

function get(port: number, agent: http.Agent | false = false): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body.trim()));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('no answer within 10 s')));
    req.once('error', reject);
  });
}

test('node HTTP server: the request counter survives checkpoint/restart on the same port, twice', async () => {
  const scope = new Scope('server-node');
  try {
    const ckpt = scope.ckptDir();
    const p1 = scope.launch({ program: [NODE, path.join(EXAMPLES, 'http-counter.js'), '0'], dir: ckpt, label: 'http-counter' });
    const port = Number((await p1.waitForLine(/^listening \d+$/)).split(' ')[1]);
    const keep = new http.Agent({ keepAlive: true, maxSockets: 1 });
    let n = 0;
    for (let i = 0; i < 5; i++) assert.is(await get(port), `count ${++n}`);
    assert.is(await get(port, keep), `count ${++n}`, 'a keep-alive client');
    for (let round = 1; round <= 2; round++) {
      await checkpoint(ckpt);
      await scope.kill9(round === 1 ? p1 : scope.procs[scope.procs.length - 1]);
      const p = scope.restart({ dir: ckpt, label: `restart ${round}` });
      let answer = '';
      for (let tries = 0; tries < 100 && !answer; tries++) {
        answer = await get(port).catch(() => '');
        if (!answer) await new Promise((r) => setTimeout(r, 100));
      }
      assert.is(answer, `count ${++n}`, `after restart ${round} the server goes on counting on port ${port}\n${p.describe()}`);
      for (let i = 0; i < 3; i++) assert.is(await get(port), `count ${++n}`);
      // the keep-alive connection died with the killed server: the agent connects again
      let viaKeep = await get(port, keep).catch(() => '');
      if (!viaKeep) viaKeep = await get(port, keep);
      assert.is(viaKeep, `count ${++n}`, 'the keep-alive client reconnects');
    }
    keep.destroy();
  } finally {
    await scope.cleanup();
  }
});

test.run();
