// `--files` and `--files-max` (src/files.ts): what the command line needs,
// without loading the rest.

/** `--files`: what a checkpoint keeps of the files the program writes. */
export type FilesPolicy = 'snapshot' | 'size' | 'none';
export const FILES_POLICIES: readonly FilesPolicy[] = ['snapshot', 'size', 'none'];
export const DEFAULT_FILES_POLICY: FilesPolicy = 'snapshot';

/** `--files-max SIZE`: 100M, 2G, 512K, 1.5GiB, or bytes; undefined when it is not a size. */
export function parseSize(text: string): number | undefined {
  const m = /^([0-9]+(?:\.[0-9]+)?)\s*([kKmMgGtT]?)(i?[bB])?$/.exec(text.trim());
  if (!m) return undefined;
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  const n = Math.floor(Number(m[1]) * mult);
  return Number.isSafeInteger(n) ? n : undefined;
}
