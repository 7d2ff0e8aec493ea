// `ckrun inspect`: the Unix domain sockets of an image or a generation —
// type, name, peer (in the session, or outside it: such a connection comes
// back as one whose peer is gone), listeners and their pending
// connections, bytes queued.
import { asArray, asBigInt, asMap, asNumber, type CborValue } from './image.js';
import type { Inspection } from './inspect-read.js';
import { formatBytes } from './output.js';

const TYPES: Record<number, string> = { 1: 'stream', 2: 'dgram', 5: 'seqpacket' };
const STATE_CONNECTED = 1;
const STATE_LISTEN = 10;

export interface UnixSocketInfo {
  pid: number;
  fd: number;
  type: string;
  ino: bigint;
  state: 'listening' | 'connected' | 'unconnected';
  name: string;
  peerName: string;
  peer: bigint;
  /** where the peer is: 'this process', 'process N', 'outside the session', 'pending on fd N', or '' */
  peerWhere: string;
  queued: number;
  messages: number | undefined;
  backlog: number | undefined;
  pending: bigint[];
}

/** A socket name as people write it: a path, or @ and an abstract name; '' when unnamed. */
export function unixName(v: CborValue): string {
  if (!(v instanceof Uint8Array) || v.length === 0) return '';
  const b = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (b[0] === 0) return '@' + b.subarray(1).toString('latin1').replace(/[^\x20-\x7e]/g, '?');
  const end = b.indexOf(0);
  return b.subarray(0, end < 0 ? b.length : end).toString();
}

/** Every Unix socket of the inspected images, with its peer found across all of them. */
export function unixSockets(i: Inspection): UnixSocketInfo[] {
  const out: UnixSocketInfo[] = [];
  for (const img of i.images) {
    const pid = asNumber(img.meta['pid']) ?? 0;
    for (const f of asArray(img.meta['files'])) {
      const fm = asMap(f);
      const s = asMap(fm['socket']);
      const u = asMap(s['unix']);
      if (asNumber(s['family']) !== 1 || u['ino'] === undefined) continue;
      const state = asNumber(u['state']);
      const q = asArray(u['queue']);
      out.push({
        pid,
        fd: asNumber(fm['fd']) ?? -1,
        type: TYPES[asNumber(s['type']) ?? 0] ?? `type ${String(s['type'])}`,
        ino: asBigInt(u['ino']) ?? 0n,
        state: state === STATE_LISTEN ? 'listening' : state === STATE_CONNECTED ? 'connected' : 'unconnected',
        name: unixName(u['name']),
        peerName: unixName(u['peer_name']),
        peer: asBigInt(u['peer']) ?? 0n,
        peerWhere: '',
        queued: asNumber(q[1]) ?? 0,
        messages: u['msgs'] !== undefined ? asArray(u['msgs']).length : undefined,
        backlog: asNumber(u['backlog']),
        pending: asArray(u['pending']).map((x) => asBigInt(x) ?? 0n),
      });
    }
  }
  for (const s of out) {
    if (s.state !== 'connected') continue;
    const peer = s.peer ? out.find((o) => o.ino === s.peer) : undefined;
    const listener = out.find((o) => o.pending.includes(s.ino));
    if (peer) s.peerWhere = peer.pid === s.pid ? `fd ${peer.fd}` : `process ${peer.pid} fd ${peer.fd}`;
    else if (listener) s.peerWhere = `not yet accepted by ${listener.pid === s.pid ? '' : `process ${listener.pid} `}fd ${listener.fd}`;
    else s.peerWhere = 'outside the session (comes back with its peer gone)';
  }
  return out;
}

function describe(s: UnixSocketInfo, many: boolean): string {
  const parts = [`${many ? `${s.pid}:` : ''}${s.fd}`, `unix ${s.type}`, s.state];
  if (s.name) parts.push(`name ${s.name}`);
  if (s.state === 'listening') {
    parts.push(`backlog ${s.backlog ?? '?'}`);
    if (s.pending.length) parts.push(`${s.pending.length} connection${s.pending.length === 1 ? '' : 's'} not yet accepted`);
  }
  if (s.state === 'connected') parts.push(`peer ${s.peerName ? `${s.peerName}, ` : ''}${s.peerWhere}`);
  if (s.queued) parts.push(`${formatBytes(s.queued)} queued${s.messages !== undefined ? ` in ${s.messages} message${s.messages === 1 ? '' : 's'}` : ''}`);
  else if (s.state !== 'listening') parts.push('nothing queued');
  return `  ${parts.join(', ')}\n`;
}

/** The "Unix sockets" section of `ckrun inspect`; '' when there are none. */
export function formatUnixSockets(i: Inspection): string {
  const all = unixSockets(i);
  if (!all.length) return '';
  const many = i.images.length > 1;
  return `\nUnix sockets (${all.length}${many ? ', as PID:FD' : ''})\n` + all.map((s) => describe(s, many)).join('');
}
