// Packet sockets (issue 13; CRIU's zdtm packet_sock, packet_sock_spkt): a
// SOCK_RAW socket with a frame version, auxiliary data, a receive ring
// (not mapped), a promiscuous membership and a fanout group; a SOCK_DGRAM
// socket bound to lo with a reserve, the original device, a multicast
// membership and a fanout group; a SOCK_PACKET socket bound to lo.
// examples/packet.c checks every option, binding and ring at every step
// and watches a marker go by on lo (spine: its lines must be an
// uninterrupted run's). A ring the program maps fails the checkpoint,
// naming the socket.
import { test } from 'uvu';
import { spine } from './lib/spine.js';
import { exampleProgram } from './lib/examples.js';
import { refusedAndRunsOn } from './lib/refused.js';

test('packet sockets: bindings, options, memberships, rings and fanout groups come back, and frames go by: kill -9, restart, twice', async () => {
  await spine({
    name: 'sockets-packet',
    example: 'packet',
    args: () => ['--steps', '120'],
    first: 15,
    second: 20,
    // the two runs would see each other's markers on lo
    refFirst: true,
  });
});

test('a packet socket whose ring the program maps fails the checkpoint, naming it; the program runs on', async () => {
  await refusedAndRunsOn(
    'sockets-packet-mapped',
    exampleProgram('packet', ['--steps', '150', '--mapped']),
    'ckrun packet --mapped',
    /the program maps a packet socket's ring ckrun cannot save.*descriptor \d+ \(socket:\[\d+\]\) \(a packet socket\): its frames are the kernel's/s,
    /^done [0-9a-f]{16}$/,
  );
});

test.run();
