// Netlink sockets (issue 13; CRIU's zdtm sk-netlink): a socket bound to a
// port ID of its own choosing, one bound to a multicast group, one
// connected to a port and a group, one the kernel binds at its first send,
// and a NETLINK_ROUTE socket listening to a group beyond the first 32 with
// its options, which dumps the links now and then. examples/netlink.c
// checks names, peers, groups and options and passes messages between
// them at every step (spine: its lines must be an uninterrupted run's).
// A checkpoint that finds messages not yet read or a dump under way
// fails and the session tries again; one that always finds them fails,
// naming the socket.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spine } from './lib/spine.js';
import { exampleProgram } from './lib/examples.js';
import { ckrun } from './lib/ckrun.js';
import { generations } from './lib/images.js';
import { lastLine } from './lib/lines.js';
import { Scope } from './lib/scope.js';

test('netlink sockets: port IDs, groups, peers and options come back and messages flow: kill -9, restart, twice', async () => {
  await spine({
    name: 'sockets-netlink',
    example: 'netlink',
    args: () => ['--steps', '120'],
    first: 15,
    second: 20,
    // the two runs' sockets would hear each other's group 32
    refFirst: true,
  });
});

test('a netlink socket with a message the program never reads fails the checkpoint, naming it; the program runs on', async () => {
  const scope = new Scope('sockets-netlink-unread');
  try {
    const ckpt = scope.ckptDir();
    const s = scope.launch({ dir: ckpt, program: exampleProgram('netlink', ['--steps', '150', '--unread']), label: 'ckrun netlink --unread' });
    await s.waitForStep(3);
    const r = await ckrun(['checkpoint', '--dir', ckpt]);
    assert.is(r.code, 1, r.describe());
    assert.match(r.stderr, /a netlink socket holds messages the program has not read yet.*descriptor \d+ \(socket:\[\d+\]\) \(a netlink socket\): ckrun cannot queue them again.*\(tried \d+ times/s, r.stderr);
    assert.equal(generations(ckpt), [], 'a failed checkpoint leaves no generation');
    const exit = await s.waitExit();
    assert.is(exit.code, 0, s.describe());
    assert.is(lastLine(s.lines)?.split(' ')[0], 'done');
  } finally {
    await scope.cleanup();
  }
});

test.run();
