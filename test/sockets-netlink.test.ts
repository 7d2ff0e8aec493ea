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
import { spine } from './lib/spine.js';
import { exampleProgram } from './lib/examples.js';
import { refusedAndRunsOn } from './lib/refused.js';

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
  await refusedAndRunsOn(
    'sockets-netlink-unread',
    exampleProgram('netlink', ['--steps', '150', '--unread']),
    'ckrun netlink --unread',
    /a netlink socket holds messages the program has not read yet.*descriptor \d+ \(socket:\[\d+\]\) \(a netlink socket\): ckrun cannot queue them again.*\(tried \d+ times/s,
    /^done [0-9a-f]{16}$/,
  );
});

test.run();
