// `ckrun inspect`: the TCP and UDP sockets of an image (docs/image-format.md,
// "socket" → "inet"). Each connection is marked by what a restart makes of
// it: both ends in the session (connected again, queued bytes delivered),
// waiting in a listener of the session, or an outside peer (comes back
// reset) / a peer that had closed (its bytes, then EOF).
import { type CborMap, type CborValue, type Image, asArray, asMap, asNumber } from './image.js';
import { formatBytes } from './output.js';

const TCP_STATES = ['?', 'ESTABLISHED', 'SYN_SENT', 'SYN_RECV', 'FIN_WAIT1', 'FIN_WAIT2', 'TIME_WAIT', 'CLOSE', 'CLOSE_WAIT', 'LAST_ACK', 'LISTEN', 'CLOSING'];


export interface InetAddress {
  address: string;
  port: number;
  /** 32 hex digits: the address as IPv6 (IPv4 as ::ffff:a.b.c.d), for pairing */
  key: string;
}

export interface InetSocket {
  pid: number;
  fd: number;
  family: 'IPv4' | 'IPv6';
  proto: 'TCP' | 'UDP';
  state: string;
  local?: InetAddress;
  peer?: InetAddress;
  queued: number;
  unsent: number;
  datagrams: number;
}

function address(v: CborValue): InetAddress | undefined {
  const a = asArray(v);
  const raw = a[0];
  const port = asNumber(a[1]);
  if (!(raw instanceof Uint8Array) || port === undefined) return undefined;
  const bytes = Buffer.from(raw);
  const v6 = bytes.length === 4 ? Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]), bytes]) : bytes;
  let text: string;
  if (bytes.length === 4) text = [...bytes].join('.');
  else {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
    text = `[${groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::').replace(/:{3,}/, '::')}]`;
  }
  return { address: text, port, key: `${v6.toString('hex')}:${port}` };
}

function queueLength(v: CborValue): number {
  return asNumber(asArray(v)[1]) ?? 0;
}

/** The TCP/UDP sockets described by one image's metadata. */
export function inetSockets(meta: CborMap): InetSocket[] {
  const pid = asNumber(meta['pid']) ?? 0;
  const out: InetSocket[] = [];
  for (const x of asArray(meta['files'])) {
    const f = asMap(x);
    const s = asMap(f['socket'] ?? {});
    const inet = s['inet'];
    if (inet === undefined) continue;
    const m = asMap(inet);
    const tcp = asNumber(s['type']) === 1;
    const st = asNumber(m['tcp_state']);
    out.push({
      pid,
      fd: asNumber(f['fd']) ?? -1,
      family: asNumber(s['family']) === 10 ? 'IPv6' : 'IPv4',
      proto: tcp ? 'TCP' : 'UDP',
      state: tcp ? TCP_STATES[st ?? 0] ?? String(st) : m['peer'] !== undefined ? 'connected' : 'unconnected',
      local: address(m['local'] ?? []),
      peer: m['peer'] !== undefined ? address(m['peer']) : undefined,
      queued: m['recv_queue'] !== undefined ? queueLength(m['recv_queue']) : 0,
      // send_unsent: the last bytes of send_queue TCP had not sent (unsent_queue: images of earlier versions)
      unsent: asNumber(m['send_unsent']) ?? (m['unsent_queue'] !== undefined ? queueLength(m['unsent_queue']) : 0),
      datagrams: asArray(m['datagrams'] ?? []).length,
    });
  }
  return out;
}

const ANY4 = '00000000000000000000ffff00000000';
const ANY6 = '00000000000000000000000000000000';

/** What a restart makes of a TCP connection, judged against every socket of the session. */
export function inetFate(s: InetSocket, session: InetSocket[]): string {
  if (s.proto === 'UDP') return s.datagrams ? `${s.datagrams} datagram${s.datagrams === 1 ? '' : 's'} queued` : '';
  if (!s.peer || !s.local || s.state === 'LISTEN' || s.state === 'CLOSE') return '';
  const partner = session.find((o) => o !== s && o.proto === 'TCP' && o.local?.key === s.peer!.key && o.peer?.key === s.local!.key);
  if (partner) return partner.pid === s.pid ? 'in session' : `in session (process ${partner.pid})`;
  const [addr, port] = [s.peer.key.slice(0, 32), s.peer.port];
  const listener = session.find(
    (o) => o.proto === 'TCP' && o.state === 'LISTEN' && o.local?.port === port && [addr, ANY4, ANY6].includes(o.local.key.slice(0, 32)),
  );
  if (listener && (s.state === 'ESTABLISHED' || s.state === 'SYN_SENT')) return 'in session, not accepted yet';
  if (s.state === 'CLOSE_WAIT' || s.state === 'LAST_ACK') return 'peer closed: queued bytes, then EOF';
  return 'outside: comes back reset (alive if frozen)';
}

let sessionSockets: InetSocket[] | undefined;

/** Every image of the generation being shown, so connections between processes pair up. */
export function setInetSession(images: Image[]): void {
  sessionSockets = images.flatMap((i) => inetSockets(i.meta));
}

/** The "TCP and UDP sockets" section of one image, or nothing. */
export function formatInet(img: Image): string {
  const mine = inetSockets(img.meta);
  if (!mine.length) return '';
  const session = sessionSockets && sessionSockets.some((s) => s.pid === mine[0].pid) ? sessionSockets : mine;
  const rows = mine.map((s) => {
    const where = (a?: InetAddress) => (a ? `${a.address}:${a.port}` : '-');
    const queued = [s.queued ? `${formatBytes(s.queued)} received` : '', s.unsent ? `${formatBytes(s.unsent)} unsent` : '']
      .filter(Boolean)
      .join(', ');
    return [String(s.fd), `${s.proto}/${s.family}`, s.state, `${where(s.local)} → ${where(s.peer)}`, inetFate(s, session), queued || '-'];
  });
  const headers = ['FD', 'PROTO', 'STATE', 'LOCAL → PEER', 'AT RESTART', 'QUEUED'];
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => '  ' + r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd() + '\n';
  return `\nTCP and UDP sockets (${mine.length})\n` + line(headers) + rows.map(line).join('');
}


