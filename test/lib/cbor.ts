// A small, strict CBOR codec (RFC 8949) and CRC-32C, independent of
// ckrun's own code, to read and craft images and manifests.

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** CRC-32C (Castagnoli), as used by the image format. crc32c("123456789") = 0xe3069283. */
export function crc32c(buf: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < buf.length; i++) c = CRC32C_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

export type Cbor = number | bigint | string | Buffer | boolean | null | undefined | Cbor[] | { [k: string]: Cbor };

class CborError extends Error {}

/** Decode one CBOR item at offset; returns it and where it ends. Big integers come back as bigint. */
export function cborDecode(buf: Buffer, offset = 0): { value: Cbor; end: number } {
  let o = offset;
  const need = (n: number) => {
    if (o + n > buf.length) throw new CborError(`CBOR: truncated at byte ${o}`);
  };
  const arg = (info: number): number | bigint | null => {
    if (info < 24) return info;
    if (info === 24) {
      need(1);
      return buf[o++];
    }
    if (info === 25) {
      need(2);
      const v = buf.readUInt16BE(o);
      o += 2;
      return v;
    }
    if (info === 26) {
      need(4);
      const v = buf.readUInt32BE(o);
      o += 4;
      return v;
    }
    if (info === 27) {
      need(8);
      const v = buf.readBigUInt64BE(o);
      o += 8;
      return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
    }
    if (info === 31) return null;
    throw new CborError(`CBOR: bad additional info ${info} at byte ${o - 1}`);
  };
  const BREAK = Symbol('break');
  const item = (): Cbor | typeof BREAK => {
    need(1);
    const ib = buf[o++];
    const major = ib >> 5;
    const info = ib & 31;
    if (major === 7) {
      switch (info) {
        case 20:
          return false;
        case 21:
          return true;
        case 22:
          return null;
        case 23:
          return undefined;
        case 25: {
          need(2);
          const h = buf.readUInt16BE(o);
          o += 2;
          const e = (h >> 10) & 0x1f;
          const m = h & 0x3ff;
          const v = e === 0 ? m * 2 ** -24 : e === 31 ? (m ? NaN : Infinity) : (m + 1024) * 2 ** (e - 25);
          return h & 0x8000 ? -v : v;
        }
        case 26: {
          need(4);
          const v = buf.readFloatBE(o);
          o += 4;
          return v;
        }
        case 27: {
          need(8);
          const v = buf.readDoubleBE(o);
          o += 8;
          return v;
        }
        case 31:
          return BREAK;
        default:
          if (info < 24) return info; // simple value
          if (info === 24) {
            need(1);
            return buf[o++];
          }
          throw new CborError(`CBOR: bad simple value at byte ${o - 1}`);
      }
    }
    const a = arg(info);
    switch (major) {
      case 0:
        if (a === null) throw new CborError('CBOR: indefinite integer');
        return a;
      case 1:
        if (a === null) throw new CborError('CBOR: indefinite integer');
        return typeof a === 'bigint' ? -1n - a : -1 - a;
      case 2:
      case 3: {
        let bytes: Buffer;
        if (a === null) {
          const parts: Buffer[] = [];
          for (;;) {
            const c = item();
            if (c === BREAK) break;
            if (!Buffer.isBuffer(c) && typeof c !== 'string') throw new CborError('CBOR: bad chunk');
            parts.push(Buffer.isBuffer(c) ? c : Buffer.from(c, 'utf8'));
          }
          bytes = Buffer.concat(parts);
        } else {
          const n = Number(a);
          need(n);
          bytes = Buffer.from(buf.subarray(o, o + n));
          o += n;
        }
        return major === 2 ? bytes : bytes.toString('utf8');
      }
      case 4: {
        const out: Cbor[] = [];
        if (a === null) {
          for (;;) {
            const c = item();
            if (c === BREAK) break;
            out.push(c);
          }
        } else {
          for (let i = 0; i < Number(a); i++) {
            const c = item();
            if (c === BREAK) throw new CborError('CBOR: unexpected break');
            out.push(c);
          }
        }
        return out;
      }
      case 5: {
        const out: { [k: string]: Cbor } = {};
        for (let i = 0; a === null || i < Number(a); i++) {
          const k = item();
          if (k === BREAK) {
            if (a === null) break;
            throw new CborError('CBOR: unexpected break');
          }
          const v = item();
          if (v === BREAK) throw new CborError('CBOR: unexpected break');
          out[Buffer.isBuffer(k) ? k.toString('hex') : String(k)] = v;
        }
        return out;
      }
      case 6: {
        const inner = item();
        if (inner === BREAK) throw new CborError('CBOR: unexpected break');
        if ((a === 2 || a === 3) && Buffer.isBuffer(inner)) {
          const n = inner.length ? BigInt('0x' + inner.toString('hex')) : 0n;
          return a === 2 ? n : -1n - n;
        }
        return inner;
      }
    }
    throw new CborError('CBOR: unreachable');
  };
  const v = item();
  if (v === BREAK) throw new CborError('CBOR: unexpected break');
  return { value: v, end: o };
}

function head(major: number, n: number | bigint): Buffer {
  const v = BigInt(n);
  if (v < 24n) return Buffer.from([(major << 5) | Number(v)]);
  if (v < 0x100n) return Buffer.from([(major << 5) | 24, Number(v)]);
  if (v < 0x10000n) {
    const b = Buffer.alloc(3);
    b[0] = (major << 5) | 25;
    b.writeUInt16BE(Number(v), 1);
    return b;
  }
  if (v < 0x100000000n) {
    const b = Buffer.alloc(5);
    b[0] = (major << 5) | 26;
    b.writeUInt32BE(Number(v), 1);
    return b;
  }
  const b = Buffer.alloc(9);
  b[0] = (major << 5) | 27;
  b.writeBigUInt64BE(v, 1);
  return b;
}

/** Encode (integers shortest, maps with text keys). Non-integer numbers become float64. */
export function cborEncode(v: Cbor): Buffer {
  if (v === false) return Buffer.from([0xf4]);
  if (v === true) return Buffer.from([0xf5]);
  if (v === null) return Buffer.from([0xf6]);
  if (v === undefined) return Buffer.from([0xf7]);
  if (typeof v === 'bigint') return v >= 0n ? head(0, v) : head(1, -1n - v);
  if (typeof v === 'number') {
    if (Number.isInteger(v)) return v >= 0 ? head(0, v) : head(1, -1 - v);
    const b = Buffer.alloc(9);
    b[0] = 0xfb;
    b.writeDoubleBE(v, 1);
    return b;
  }
  if (typeof v === 'string') {
    const s = Buffer.from(v, 'utf8');
    return Buffer.concat([head(3, s.length), s]);
  }
  if (Buffer.isBuffer(v)) return Buffer.concat([head(2, v.length), v]);
  if (Array.isArray(v)) return Buffer.concat([head(4, v.length), ...v.map(cborEncode)]);
  const keys = Object.keys(v);
  return Buffer.concat([head(5, keys.length), ...keys.flatMap((k) => [cborEncode(k), cborEncode(v[k])])]);
}

/** bigint → number where exact, recursively (for comparisons and JSON). */
export function toPlain(v: unknown): unknown {
  if (typeof v === 'bigint') return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  if (Buffer.isBuffer(v)) return v;
  if (Array.isArray(v)) return v.map(toPlain);
  if (v && typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = toPlain(x);
    return o;
  }
  return v;
}
