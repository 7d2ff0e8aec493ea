// The checks preload/Makefile runs on every build of the shim (docs/design.md,
// "Checked by the build"): they pass on what is built, and each one fails, naming
// the culprit, on a small object made to break it.
//   - layers (scripts/check-layers.sh): no file uses a hidden symbol of a layer
//     above it, no cycle within a layer;
//   - the signal handler (scripts/check-handler-code.mjs): nothing reachable from
//     it refers to libc or uses TLS; of a descriptor kind only the handler's
//     operations count;
//   - the restore core (scripts/check-restore-code.sh): no indirect call, no
//     address of code outside it.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const scripts = path.join(root, 'scripts');
const preload = path.join(root, 'preload');
// the shim's own flags (preload/Makefile) for the objects made here
const CFLAGS = ['-std=gnu11', '-O2', '-fPIC', '-fvisibility=hidden', '-fno-builtin', '-fno-jump-tables', '-ffunction-sections', '-fdata-sections', `-I${preload}`];

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ckrun-build-checks-'));
test.after(() => fs.rmSync(work, { recursive: true, force: true }));

/** Compiles source (C) into work/name.o; returns its path. */
function object(name: string, source: string): string {
  const src = path.join(work, `${name}.c`);
  fs.writeFileSync(src, source);
  execFileSync('gcc', [...CFLAGS, '-c', src, '-o', path.join(work, `${name}.o`)]);
  return path.join(work, `${name}.o`);
}

/** Runs a check; its exit status and everything it said. */
function run(cmd: string, args: string[]): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

const HIDDEN = '__attribute__((visibility("hidden")))';

test('the build checks pass on the shim as built (make -C preload check)', () => {
  const out = execFileSync('make', ['-s', '-C', preload, 'check', `OUT=${path.join(root, 'build/Release')}`], { encoding: 'utf8' });
  assert.match(out, /check-layers: ok \(\d+ files in 6 layers/);
  assert.match(out, /check-handler-code: ok \(\d+ functions reachable from ck_signal_handler/);
  assert.match(out, /check-restore-code: ckcore ok/);
});

test('check-layers fails when a kind uses a symbol of an orchestration file, and on a cycle within a layer', () => {
  const dir = path.join(work, 'layers');
  fs.mkdirSync(dir);
  const obj = (name: string, source: string) => fs.renameSync(object(name, source), path.join(dir, `${name}.o`));
  obj('orch', `${HIDDEN} void ck_orchestrate(void) {}\n`);
  obj('kind', `${HIDDEN} void ck_orchestrate(void);\n${HIDDEN} void ck_kind_op(void) { ck_orchestrate(); }\n`);
  let r = run(path.join(scripts, 'check-layers.sh'), [dir, 'kinds: kind.c', 'orchestration: orch.c']);
  assert.is.not(r.status, 0, r.out);
  assert.match(r.out, /kind\.c \(kinds\) uses ck_orchestrate of orch\.c \(orchestration, a layer above it\)/);
  // the same files with orch.c below kind.c are fine
  r = run(path.join(scripts, 'check-layers.sh'), [dir, 'base: orch.c', 'kinds: kind.c']);
  assert.is(r.status, 0, r.out);
  // a cycle within one layer
  fs.rmSync(path.join(dir, 'orch.o'));
  obj('other', `${HIDDEN} void ck_kind_op(void);\n${HIDDEN} void ck_orchestrate(void) { ck_kind_op(); }\n`);
  r = run(path.join(scripts, 'check-layers.sh'), [dir, 'kinds: kind.c other.c']);
  assert.is.not(r.status, 0, r.out);
  assert.match(r.out, /call each other in a cycle/);
});

test('check-handler-code fails on libc or TLS reachable from the handler, and follows only the handler operations of a kind', () => {
  const kind = object(
    'kindfile',
    `#include <stdlib.h>
#include "fdkind.h"
static int detect(const struct ck_fd *f) { return f->fd == 3; }
static void save(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f) { (void)w, (void)t; (void)getenv(f->link); }
static int open_it(struct ck_image *img, struct ck_img_file *f, int base, const struct ck_objects *objs)
{ (void)img, (void)base, (void)objs; return malloc(f->fd) != 0; }
CK_HIDDEN const struct ck_fd_kind ck_kind_probe = {.name = "probe", .detect = detect, .save = save, .open = open_it};
`,
  );
  const handler = object(
    'handlerfile',
    `#include "fdkind.h"
CK_HIDDEN extern const struct ck_fd_kind ck_kind_probe;
static const struct ck_fd_kind *const kinds[] = {&ck_kind_probe, &ck_kind_probe};
static __thread int depth;
CK_HIDDEN void ck_signal_handler(int sig, siginfo_t *si, void *ucv)
{ const struct ck_fd *f = ucv; (void)si; if (kinds[sig & 1]->detect(f)) kinds[sig & 1]->save(0, 0, f); }
CK_HIDDEN void ck_session_forked_child(void) { depth++; }
CK_HIDDEN void ck_hold_handler(int sig, siginfo_t *si, void *ucv) { (void)sig, (void)si, (void)ucv; }
`,
  );
  const r = run('node', [path.join(scripts, 'check-handler-code.mjs'), path.join(preload, 'fdkind.h'), kind, handler]);
  assert.is.not(r.status, 0, r.out);
  assert.match(r.out, /ck_signal_handler \(handlerfile\.c\) -> kinds \(handlerfile\.c\) -> ck_kind_probe \(kindfile\.c\) -> save \(kindfile\.c\) refers to getenv/);
  assert.match(r.out, /ck_session_forked_child \(handlerfile\.c\) uses thread-local storage/);
  assert.not.match(r.out, /malloc/, 'a kind\'s open runs in the restore host, not in the handler');
});

test('check-restore-code fails on an indirect call in the restore core and on the address of code outside it', () => {
  const src = path.join(work, 'core.c');
  fs.writeFileSync(
    src,
    `static void outside(void) {}
__attribute__((section("ckcore"))) void core_calls(void (*volatile *slot)(void)) { *slot = outside; (*slot)(); }
`,
  );
  const lib = path.join(work, 'libcore.so');
  execFileSync('gcc', ['-O2', '-fPIC', '-fno-jump-tables', '-shared', '-o', lib, src]);
  const r = run(path.join(scripts, 'check-restore-code.sh'), [lib]);
  assert.is.not(r.status, 0, r.out);
  assert.match(r.out, /core_calls makes an indirect call or jump/);
  assert.match(r.out, /takes the address 0x[0-9a-f]+ of code outside the restore core/);
});

test.run();
