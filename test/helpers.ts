// The test harness, by concern under test/lib/ (this file only re-exports
// them while test files move over).
export * from './lib/paths.js';
export * from './lib/examples.js';
export * from './lib/lines.js';
export * from './lib/proc.js';
export * from './lib/processes.js';
export * from './lib/ckrun.js';
export * from './lib/scope.js';
export * from './lib/cbor.js';
export * from './lib/images.js';
