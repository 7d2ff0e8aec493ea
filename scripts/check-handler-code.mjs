#!/usr/bin/env node
// Verifies that the code the checkpoint runs in its signal handler calls
// no libc (docs/design.md, "Code in the signal handler"). The handler
// interrupts the program anywhere, inside malloc or holding a stdio lock,
// and its writer runs in a forked copy of a multithreaded program: only
// raw system calls and the shim's own helpers are safe there.
//
//   check-handler-code.mjs [--list] FDKIND_H OBJECT...
//
// From the object files (built with -ffunction-sections -fdata-sections, so
// that every function and object is a section of its own), it follows,
// from the roots below, everything a reachable function refers to: the
// functions it calls, the functions whose address it takes (a writer
// started through clone3), the data it uses and the pointers in that data.
// Of a descriptor kind (a `ck_kind_*` object, preload/fdkind.h) only the
// operations the handler calls are followed: the fields before
// CK_FD_KIND_HANDLER_END; the rest runs in the restore host (so handler
// code must reach a kind's other operations, if ever, by their names). The restore
// core (section ckcore) is freestanding already (check-restore-code.sh).
// It fails when anything reachable refers to a symbol the shim does not
// define (a libc function, errno's __errno_location) other than those
// allowed below, or uses thread-local storage.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

// Where the handler's code starts: the signal handlers (the internal one,
// and the one that holds --checkpoint-on signals, holdsig.c), and fork's child
// handler (pthread_atfork), which runs in an async-signal context too.
const ROOTS = ['ck_signal_handler', 'ck_session_forked_child', 'ck_hold_handler'];
// Symbols outside the shim the handler may refer to, each with its reason
// (it must be async-signal-safe, take no lock and use no TLS). No function.
const ALLOWED_EXTERNAL = new Map([
  // glibc's read-only description of its rseq area (threads.c reads it to
  // save the registration): constants, no call
  ['__rseq_size', 'a constant of libc, read'],
  ['__rseq_offset', 'a constant of libc, read'],
]);
const KIND_OBJECT = /^ck_kind_/;
const TLS_RELOCATIONS = /^R_X86_64_(TPOFF|GOTTPOFF|TLSGD|TLSLD|DTPOFF|GOTPC32_TLSDESC|TLSDESC)/;

const args = process.argv.slice(2);
const list = args[0] === '--list' && args.shift();
const [fdkindH, ...files] = args;
if (!fdkindH || !files.length) {
  console.error('usage: check-handler-code.mjs [--list] FDKIND_H OBJECT...');
  process.exit(2);
}
const handlerEnd = Number(/#define CK_FD_KIND_HANDLER_END (\d+)/.exec(readFileSync(fdkindH, 'utf8'))?.[1]);
if (!handlerEnd) {
  console.error(`check-handler-code: ${fdkindH} does not define CK_FD_KIND_HANDLER_END`);
  process.exit(2);
}

const readelf = (args) => execFileSync('readelf', args, { encoding: 'utf8', maxBuffer: 256 << 20 });

/** One object file: its sections by index and name, its symbols, its relocations by section. */
function readObject(file) {
  const obj = { name: path.basename(file, '.o'), sections: new Map(), byName: new Set(), symbols: new Map(), relocs: new Map() };
  for (const line of readelf(['-SW', file]).split('\n')) {
    const m = /^\s*\[\s*(\d+)\]\s+(\S+)/.exec(line);
    if (m) {
      obj.sections.set(Number(m[1]), m[2]);
      obj.byName.add(m[2]);
    }
  }
  for (const line of readelf(['-sW', file]).split('\n')) {
    const m = /^\s*\d+:\s+([0-9a-f]+)\s+\S+\s+(\w+)\s+(\w+)\s+(\w+)\s+(\w+)\s+(\S*)/.exec(line);
    if (!m || !m[6]) continue;
    const [, value, type, bind, , ndx, name] = m;
    const defined = /^\d+$/.test(ndx);
    const sym = { value: parseInt(value, 16), type, bind, section: defined ? obj.sections.get(Number(ndx)) : undefined };
    // a local and a global of one name cannot both exist in one object; keep the defined one
    if (!obj.symbols.has(name) || defined) obj.symbols.set(name, sym);
  }
  let current = null;
  for (const line of readelf(['-rW', file]).split('\n')) {
    const head = /^Relocation section '\.rela(\S+)'/.exec(line);
    if (head) {
      current = head[1];
      obj.relocs.set(current, []);
      continue;
    }
    const m = /^([0-9a-f]+)\s+[0-9a-f]+\s+(\S+)\s+[0-9a-f]+\s+(\S+)/.exec(line);
    if (m && current) obj.relocs.get(current).push({ offset: parseInt(m[1], 16), type: m[2], target: m[3] });
  }
  return obj;
}

const objects = files.map(readObject);
const globals = new Map(); // name -> { obj, section, value }
for (const obj of objects)
  for (const [name, sym] of obj.symbols)
    if (sym.section && (sym.bind === 'GLOBAL' || sym.bind === 'WEAK')) globals.set(name, { obj, section: sym.section, value: sym.value });

/** Where a relocation's target is defined: { obj, section, name, value }, or null for a symbol outside the shim. */
function resolve(obj, target) {
  if (obj.byName.has(target)) return { obj, section: target, name: target, value: 0 };
  const sym = obj.symbols.get(target);
  if (sym?.section) return { obj, section: sym.section, name: target, value: sym.value };
  const g = globals.get(target);
  return g ? { obj: g.obj, section: g.section, name: target, value: g.value } : null;
}

/** The function or object a section holds, for messages. */
function label(obj, section) {
  for (const [name, sym] of obj.symbols) if (sym.section === section && sym.type !== 'SECTION' && !name.startsWith('.')) return `${name} (${obj.name}.c)`;
  return `${section} (${obj.name}.c)`;
}

const seen = new Map(); // "obj:section" -> the key it was reached from
const queue = [];
function reach(obj, section, from, only) {
  const key = `${obj.name}:${section}${only ? `<${only}` : ''}`;
  if (seen.has(key)) return;
  seen.set(key, from);
  queue.push({ obj, section, key, only });
}
for (const root of ROOTS) {
  const g = globals.get(root);
  if (!g) {
    console.error(`check-handler-code: the handler's root ${root} is defined in none of the objects given`);
    process.exit(1);
  }
  reach(g.obj, g.section, null, 0);
}

const problems = [];
function chain(key) {
  const names = [];
  for (let k = key; k; k = seen.get(k)) {
    const [objName, rest] = [k.slice(0, k.indexOf(':')), k.slice(k.indexOf(':') + 1)];
    const obj = objects.find((o) => o.name === objName);
    names.unshift(label(obj, rest.replace(/<\d+$/, '')));
  }
  return names.join(' -> ');
}

let functions = 0;
const reached = [];
while (queue.length) {
  const { obj, section, key, only } = queue.shift();
  if (section === 'ckcore') continue; // freestanding: check-restore-code.sh
  if (section.startsWith('.text')) {
    functions++;
    reached.push(label(obj, section));
  }
  for (const r of obj.relocs.get(section) ?? []) {
    if (only && r.offset >= only) continue;
    if (TLS_RELOCATIONS.test(r.type)) {
      problems.push(`${chain(key)} uses thread-local storage (${r.type} ${r.target})`);
      continue;
    }
    const t = resolve(obj, r.target);
    if (!t) {
      if (!ALLOWED_EXTERNAL.has(r.target)) problems.push(`${chain(key)} refers to ${r.target}, which is not the shim's own (libc?)`);
      continue;
    }
    // a descriptor kind: only the operations the handler calls
    const isKind = KIND_OBJECT.test(t.name) || /\.ck_kind_\w+$/.test(t.section);
    const kindEnd = isKind ? t.value + handlerEnd : 0;
    reach(t.obj, t.section, key, kindEnd);
  }
}

if (problems.length) {
  for (const p of [...new Set(problems)]) console.error(`check-handler-code: ${p}`);
  console.error(
    'check-handler-code: code the checkpoint runs in its signal handler must use raw system calls (sys.h) and the ' +
      "shim's own freestanding helpers only (docs/design.md, \"Code in the signal handler\")",
  );
  process.exit(1);
}
if (list) console.log(reached.sort().join('\n'));
console.log(`check-handler-code: ok (${functions} functions reachable from ${ROOTS.join(', ')}; no libc, no TLS)`);
