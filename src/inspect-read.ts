// `ckrun inspect`: reading what IMAGE names (an image, a generation, or a
// checkpoint DIR's newest generation); src/inspect.ts formats it.
import { stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { findNewestGeneration, isGenerationDir, readManifest, type Manifest } from './generations.js';
import { readImage, type Image } from './image.js';
import { displayPath } from './output.js';

export interface Inspection {
  /** The generation, when IMAGE was a generation directory or a checkpoint DIR. */
  generation: { path: string; manifest: Manifest } | undefined;
  images: Image[];
}

export class InspectError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InspectError';
  }
}

/**
 * Reads what `target` names: a `.ckpt` or `.ckpt.gz` file, a generation directory (every
 * process in it) or a checkpoint DIR (its newest complete generation).
 * Verifies header and metadata (and with verifyData every data chunk);
 * throws ImageError / InspectError with a clear message.
 */
export async function inspectImage(target: string, opts: { verifyData?: boolean } = {}): Promise<Inspection> {
  const path = resolve(target);
  let st;
  try {
    st = await stat(path);
  } catch {
    throw new InspectError(`${displayPath(path)} does not exist`);
  }
  if (!st.isDirectory()) return { generation: undefined, images: [await readImage(path, opts)] };
  let genPath = path;
  if (!(await isGenerationDir(path))) {
    if (/^\.[0-9]+\.partial$/.test(basename(path)))
      throw new InspectError(`${displayPath(path)} is an unfinished checkpoint (no manifest); inspect one of its image files instead`);
    const g = await findNewestGeneration(path);
    if (!g) throw new InspectError(`${displayPath(path)} holds no complete checkpoint`);
    genPath = g.path;
  }
  const manifest = await readManifest(genPath).catch((e: Error) => {
    throw new InspectError(e.message);
  });
  const images: Image[] = [];
  for (const p of manifest.processes) images.push(await readImage(join(genPath, p.image), opts));
  return { generation: { path: genPath, manifest }, images };
}
