// Connections not yet accepted that hold bytes (issue 13). The bytes a
// client sent before the program accepted its connection wait where only
// accept() reads them, so no image holds them. The shim fails the
// checkpoint when the client is one of the session's sockets (the barrier
// names them in "save socks=") and lists the others, outside the session,
// in the listener's "pending_bytes": they lose that connection at restart
// like any connection to the outside, bytes included. This second look,
// once every image is written, finds a client listed so that an image
// holds after all (a socket the session held but ckrun did not name) and
// fails the checkpoint with the shim's message, a "passing state" the
// session tries again (PASSING_STATES in session.ts).
import { asArray, asBigInt, asMap, asNumber, type CborMap } from './image.js';

export interface UnacceptedOutcome {
  /** A failure naming the listener and the client when a client in the session sent bytes. */
  failure?: string;
  /** Connections with bytes whose clients are outside the session (lost at restart). */
  outside: { pid: number; fd: number; client: bigint }[];
}

interface UnixEntry {
  pid: number;
  fd: number;
  ino: bigint;
  pendingBytes: bigint[];
}

function unixEntries(meta: CborMap): UnixEntry[] {
  const pid = asNumber(meta['pid']) ?? 0;
  const out: UnixEntry[] = [];
  for (const f of asArray(meta['files'])) {
    const fm = asMap(f);
    const s = asMap(fm['socket']);
    const u = asMap(s['unix']);
    const ino = asBigInt(u['ino']);
    if (ino === undefined) continue;
    out.push({ pid, fd: asNumber(fm['fd']) ?? -1, ino, pendingBytes: asArray(u['pending_bytes']).map((x) => asBigInt(x) ?? 0n) });
  }
  return out;
}

/** Looks at the metadata of the images of a generation just written for clients in the session whose bytes no image holds. */
export function checkUnaccepted(metas: CborMap[]): UnacceptedOutcome {
  const all: UnixEntry[] = [];
  for (const meta of metas) all.push(...unixEntries(meta));
  const outside: UnacceptedOutcome['outside'] = [];
  for (const l of all)
    for (const client of l.pendingBytes) {
      const inside = all.find((e) => e.ino === client);
      if (!inside) {
        outside.push({ pid: l.pid, fd: l.fd, client });
        continue;
      }
      return {
        outside,
        failure:
          `process ${l.pid}: a connection not yet accepted holds bytes ckrun cannot read: descriptor ${l.fd} (a Unix domain socket): ` +
          `its client, descriptor ${inside.fd} of process ${inside.pid}, sent data the program has not accepted yet; ` +
          `the kernel keeps those bytes where only accept() reaches them. Checkpoint again once the program has accepted the connection`,
      };
    }
  return { outside };
}
