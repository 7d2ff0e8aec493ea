#!/usr/bin/env node
// ckrun's command line; the code is in src/cli.ts (compiled to dist/ by npm install).
let cli;
try {
  cli = await import('../dist/src/cli.js');
} catch (e) {
  if (e && e.code === 'ERR_MODULE_NOT_FOUND' && String(e.message).includes('dist/src/cli.js')) {
    process.stderr.write('ckrun: not built yet: run npm install in the ckrun directory\n');
    process.exit(70);
  }
  throw e;
}
process.exit(await cli.main(process.argv.slice(2)));
