// ckrun's library API: everything the command line does, callable from tests
// and programs. The command line (src/cli.ts, bin/ckrun.js) is built on the
// library and is not part of it: nothing here imports it.
export { launch, SessionError, DEFAULT_INTERNAL_SIGNAL, DEFAULT_TRIGGER_SIGNAL, CHECKPOINT_TIMEOUT_MS, STOPPED_AFTER_CHECKPOINT } from './session.js';
export type { Session, SessionOptions, LaunchOptions, CheckpointResult, SessionExit } from './session.js';
export { requestCheckpoint, sessionStatus, CheckpointError } from './checkpoint-client.js';
export { resumeOrLaunch, keepAlive, unaskedDeath, keepAliveDelay, DEFAULT_KEEP_ALIVE } from './resume.js';
export type { ResumeOptions, Resumed, KeepAliveOptions } from './resume.js';
export { restart, pickImage, RestartError } from './restart.js';
export type { RestartOptions, RestartedSession, RestartSource } from './restart.js';
export { compressLevel, isCompressedImage, CompressError, DEFAULT_COMPRESS_LEVEL, GZIP_SUFFIX } from './compress.js';
export { compressImage, openFlatImage } from './flatten.js';
export type { CompressedImage, ImageSource } from './flatten.js';
export {
  decompressImage,
  readImage,
  verifyImageData,
  dataChunks,
  threads,
  regions,
  files,
  signalsOf,
  imagePid,
  imageTids,
  ImageError,
  IMAGE_VERSION,
  imageIdentity,
} from './image.js';
export type { Image, ImageHeader, ImageProblem, ReadImageOptions, CborValue, CborMap } from './image.js';
export { inspectImage, formatInspection, formatImage, inspectionJson, InspectError } from './inspect.js';
export type { Inspection } from './inspect.js';
export {
  findNewestGeneration,
  completeGenerations,
  listGenerations,
  nextGenerationNumber,
  readManifest,
  writeManifest,
  encodeManifest,
  parseManifest,
  ManifestError,
  MANIFEST_VERSION,
} from './generations.js';
export { verifyDirectory, verifyGeneration, formatVerifyReport, VerifyCache } from './verify.js';
export type { VerifyReport, GenerationReport, DamagedFile, VerifyOptions } from './verify.js';
export type { Manifest, ManifestProcess, Generation, GenerationEntry } from './generations.js';
export {
  canonicalDir,
  socketNameFor,
  NoSessionError,
  RefusedError,
  SessionLostError,
  UntrustedSessionError,
  DEFAULT_DIR,
} from './protocol.js';
export type { SessionStatus } from './protocol.js';
export { parseSignal, signalName } from './signals.js';
export { crc32c, crc32cFile } from './native.js';
export type { ExitStatus } from './native.js';
