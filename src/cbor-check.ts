// The strict subset of CBOR that images, their header and the manifest keep
// to (docs/image-format.md, "Well-formed CBOR"). Checked before anything is
// decoded, by this reader and by the restore host (preload/cbor.c,
// cbd_well_formed) alike: what one refuses, the other refuses too, and the
// decoder (cbor-x) only ever sees input it handles without surprises.
//
//   exactly one item filling the bytes; unsigned and negative integers;
//   definite-length byte and text strings; arrays and maps of definite or
//   indefinite length, map keys distinct text strings (at most MAX_MAP of
//   them); false, true, null; at most MAX_DEPTH containers nested. No tags,
//   floats, other simple values, indefinite-length strings.

export const MAX_DEPTH = 32;
export const MAX_MAP = 256;

/** Iterative, so that no input can exhaust the stack. */
export function wellFormed(b: Uint8Array): boolean {
  // each open container: items still expected (-1: indefinite), whether a map, whether a key is next
  const stack: { left: number; map: boolean; keyNext: boolean; keys: Set<string> | undefined }[] = [];
  let p = 0;
  let done = false;
  while (!done) {
    const top = stack[stack.length - 1];
    if (top) {
      if (top.left === 0) {
        stack.pop();
        afterItem();
        continue;
      }
      if (top.left < 0 && b[p] === 0xff && (!top.map || top.keyNext)) {
        p++;
        stack.pop();
        afterItem();
        continue;
      }
    }
    if (p >= b.length) return false;
    const first = b[p]!;
    const major = first >> 5;
    const info = first & 31;
    const isKey = top !== undefined && top.map && top.keyNext;
    if (major === 7) {
      p++;
      if (isKey || (first !== 0xf4 && first !== 0xf5 && first !== 0xf6)) return false;
      afterItem();
      continue;
    }
    if (isKey && major !== 3) return false;
    if (isKey && top.keys!.size >= MAX_MAP) return false;
    p++;
    let arg = 0;
    let indefinite = false;
    if (info < 24) arg = info;
    else if (info <= 27) {
      const n = 1 << (info - 24);
      if (p + n > b.length) return false;
      for (let i = 0; i < n; i++) arg = arg * 256 + b[p + i]!; // above 2^53 only loses precision, still "large"
      p += n;
    } else if (info === 31) indefinite = true;
    else return false;
    switch (major) {
      case 0:
      case 1:
        if (indefinite) return false;
        afterItem();
        break;
      case 2:
      case 3:
        if (indefinite || arg > b.length - p) return false;
        if (isKey) {
          // compared by their bytes (as the restore host compares them)
          const key = Buffer.from(b.buffer, b.byteOffset + p, arg).toString('latin1');
          if (top.keys!.has(key)) return false;
          top.keys!.add(key);
        }
        p += arg;
        afterItem();
        break;
      case 4:
      case 5:
        if (stack.length >= MAX_DEPTH || (!indefinite && arg > b.length - p)) return false;
        stack.push({ left: indefinite ? -1 : major === 5 ? arg * 2 : arg, map: major === 5, keyNext: true, keys: major === 5 ? new Set() : undefined });
        break;
      default:
        return false; // tags
    }
  }
  return p === b.length;

  /** One item (or a whole container) is complete: count it in its container. */
  function afterItem(): void {
    const top = stack[stack.length - 1];
    if (!top) {
      done = true;
      return;
    }
    if (top.map) top.keyNext = !top.keyNext;
    if (top.left > 0) top.left--;
  }
}
