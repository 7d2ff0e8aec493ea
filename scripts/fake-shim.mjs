#!/usr/bin/env node
// A stand-in for the shim and the restore host, for exercising ckrun's
// coordinator (launch, checkpoint, generations, manifest, inspect, restart)
// without the C shim. It speaks the wire protocol of docs/design.md and
// writes small but valid images (docs/image-format.md).
//
// As a program (run it with CKRUN_SHIM_PATH= so nothing is preloaded):
//   ckrun --dir D -- scripts/fake-shim.mjs [--count N] [--period MS] [--exit CODE]
//        [--no-hello] [--fail MESSAGE] [--stall] [--big MIB]
//   prints "count <n>" every period; the state (n) goes into the image.
// As the restore host (CKRUN_RESTORE_HOST=scripts/fake-shim.mjs):
//   fake-shim.mjs [--init] IMAGE   reads the state back, says "restored <pid>",
//   and counts on. FAKE_RESTORE_FAIL=<message> makes it fail instead.
import { Encoder, Decoder } from 'cbor-x';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { createRequire } from 'node:module';

// Node's net pads abstract socket names to 108 bytes; ckrun's addon connects
// with the exact length, like the real shim.
const addon = createRequire(import.meta.url)('../build/Release/ckrun_native.node');

const PAGE = 4096;

/** This process's credentials, as the shim records them (from /proc/self/status). */
function fakeCreds() {
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const field = (name) => (new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(status)?.[1] ?? '').trim();
  const ids = (name) => field(name).split(/\s+/).map(Number);
  const cap = (name) => BigInt('0x' + (field(name) || '0'));
  return {
    uid: ids('Uid'),
    gid: ids('Gid'),
    groups: field('Groups').split(/\s+/).filter(Boolean).map(Number),
    caps: { effective: cap('CapEff'), permitted: cap('CapPrm'), inheritable: cap('CapInh'), bounding: cap('CapBnd'), ambient: cap('CapAmb') },
    securebits: 0,
    no_new_privs: field('NoNewPrivs') === '1',
    dumpable: 1,
  };
}

// ---- CRC-32C (independent of ckrun's addon, so it cross-checks it) ----
const TABLE = new Uint32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  TABLE[n] = c >>> 0;
}
function crc32c(buf, crc = 0) {
  crc = ~crc >>> 0;
  for (let i = 0; i < buf.length; i++) crc = (crc >>> 8) ^ TABLE[(crc ^ buf[i]) & 0xff];
  return ~crc >>> 0;
}

const enc = new Encoder({ useRecords: false, variableMapSize: true, tagUint8Array: false });
const dec = new Decoder({ mapsAsObjects: true, useRecords: false });

function out(line) {
  fs.writeSync(1, line + '\n');
}
function err(line) {
  fs.writeSync(2, `fake-shim[${process.pid}]: ${line}\n`);
}

// ---- options ----
const args = process.argv.slice(2);
let restoreImage;
let initMode = false;
if (args[0] === '--init') {
  initMode = true;
  restoreImage = args[1];
} else if (args[0] && args[0].endsWith('.ckpt')) {
  restoreImage = args[0];
}
const opt = { count: Infinity, period: 200, exit: 0, hello: true, fail: undefined, stall: false, big: 0 };
for (let i = 0; i < args.length && !restoreImage; i++) {
  const a = args[i];
  if (a === '--count') opt.count = Number(args[++i]);
  else if (a === '--period') opt.period = Number(args[++i]);
  else if (a === '--exit') opt.exit = Number(args[++i]);
  else if (a === '--no-hello') opt.hello = false;
  else if (a === '--fail') opt.fail = args[++i];
  else if (a === '--stall') opt.stall = true;
  else if (a === '--big') opt.big = Number(args[++i]);
  else {
    err(`unknown option ${a}`);
    process.exit(64);
  }
}

let state = { counter: 0, count: opt.count, period: opt.period, exit: opt.exit, big: opt.big, fail: opt.fail, stall: opt.stall };
let myPid = process.pid;

// ---- image writing ----
function writeImage(path) {
  const t0 = process.hrtime.bigint();
  const stateBytes = Buffer.from(JSON.stringify(state));
  const dataPages = Math.ceil(stateBytes.length / PAGE) + state.big * 256;
  const data = Buffer.alloc(dataPages * PAGE);
  stateBytes.copy(data);
  for (let p = 1; p < dataPages; p++) data.writeUInt32LE(p * 2654435761 >>> 0, p * PAGE); // something non-zero
  const base = 0x10000000;
  const region = {
    start: base,
    end: base + dataPages * PAGE,
    prot: 3,
    shared: false,
    kind: 'anon',
    name: '',
    runs: [[base, dataPages, PAGE, crc32c(data)]],
    bytes: data.length,
  };
  const meta = {
    version: 1,
    created_ns: BigInt(Date.now()) * 1000000n,
    hostname: os.hostname(),
    kernel: os.release(),
    machine: os.machine(),
    pid: myPid,
    ppid: process.ppid,
    pgid: myPid,
    sid: myPid,
    exe: process.execPath,
    cmdline: process.argv,
    comm: 'node',
    cwd: process.cwd(),
    umask: process.umask(),
    personality: 0,
    // who it runs as (docs/image-format.md, creds): the fake restore host sets nothing
    creds: fakeCreds(),
    rlimits: [[-1, -1], [-1, -1], [8388608, -1]],
    mm: { start_code: 0x400000, end_code: 0x401000, start_brk: 0x500000, brk: 0x521000 },
    auxv: Buffer.alloc(16),
    vdso: { vvar: [0x7fff0000n * 0x10000n, 0x7fff0000n * 0x10000n + 0x4000n], vdso_crc: 1234 },
    signal: Number(process.env.CKRUN_SIGNAL ?? 63),
    ctl_fd: 1000,
    threads: [
      {
        tid: myPid,
        leader: true,
        fs_base: 0x7f0000001000n,
        comm: 'node',
        sigmask: 1n << 63n,
        pending: 0,
        regs: { rip: 0x7f1234567890n, rsp: 0x7ffc12345678n, rax: 18446744073709551612n },
        resume: Buffer.alloc(64, 1),
        sigaltstack: [0, 0, 2],
        robust_list: [0x7f0000001a20n, 24],
        clear_tid: 0x7f0000001910n,
        rseq: [0x7f0000001e20n, 32, 0x53053053],
      },
    ],
    signals: {
      actions: [[10, 0x401234, 0x14000004, 0x401000, 1 << 14]],
      pending: 1n << 13n,
      itimers: [[1000000, 250000], [0, 0], [0, 0]],
    },
    files: [0, 1, 2].map((fd) => ({ fd, kind: 'stdio', stdio: fd, path: `/proc/self/fd/${fd}`, flags: fd === 0 ? 0 : 1, cloexec: false, offset: 0 })),
    memory: [region],
    stats: { pause_ns: 1500000, pages: dataPages, bytes: data.length },
  };
  const metaBytes = enc.encode(meta);
  const metaOffset = PAGE + data.length;
  const fileLength = metaOffset + metaBytes.length;
  const header = enc.encode({
    magic: 'ckrun-image',
    version: Number(process.env.FAKE_IMAGE_VERSION ?? 1),
    data_offset: PAGE,
    data_length: data.length,
    meta_offset: metaOffset,
    meta_length: metaBytes.length,
    meta_crc: crc32c(metaBytes),
    file_length: fileLength,
  });
  const block = Buffer.alloc(PAGE);
  enc.encode([header, crc32c(header)]).copy(block);
  const tmp = path + '.tmp';
  const fd = fs.openSync(tmp, 'w', 0o600);
  fs.writeSync(fd, Buffer.alloc(PAGE), 0, PAGE, 0);
  fs.writeSync(fd, data, 0, data.length, PAGE);
  fs.writeSync(fd, metaBytes, 0, metaBytes.length, metaOffset);
  fs.fsyncSync(fd);
  fs.writeSync(fd, block, 0, PAGE, 0);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fs.renameSync(tmp, path);
  const total = process.hrtime.bigint() - t0;
  return { bytes: fileLength, pause: 1500000, total };
}

function readImage(path) {
  const fd = fs.openSync(path, 'r');
  const block = Buffer.alloc(PAGE);
  fs.readSync(fd, block, 0, PAGE, 0);
  let arr;
  dec.decodeMultiple(block, (v) => {
    arr = v;
    return false;
  });
  if (crc32c(arr[0]) !== arr[1]) throw new Error('header checksum mismatch');
  const h = dec.decode(arr[0]);
  const metaBytes = Buffer.alloc(Number(h.meta_length));
  fs.readSync(fd, metaBytes, 0, metaBytes.length, Number(h.meta_offset));
  const meta = dec.decode(metaBytes);
  const run = meta.memory[0].runs[0];
  const data = Buffer.alloc(Number(run[1]) * PAGE);
  fs.readSync(fd, data, 0, data.length, Number(run[2]));
  fs.closeSync(fd);
  if (crc32c(data) !== Number(run[3])) throw new Error('data checksum mismatch');
  const end = data.indexOf(0);
  return { meta, state: JSON.parse(data.subarray(0, end < 0 ? data.length : end).toString()) };
}

// ---- the protocol ----
function connectSession(firstLine) {
  const name = process.env.CKRUN_SOCK;
  if (!name) {
    err('CKRUN_SOCK is not set: not running under ckrun');
    return;
  }
  let fd;
  try {
    fd = addon.unixConnect(name);
  } catch (e) {
    err(`cannot connect to ckrun: ${e.message}`);
    return;
  }
  const sock = new net.Socket({ fd, readable: true, writable: true });
  sock.write(firstLine + '\n');
  sock.on('error', (e) => err(`session connection: ${e.message}`));
  sock.unref();
  let buf = '';
  sock.on('data', (chunk) => {
    buf += chunk.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (!line.startsWith('checkpoint ')) {
        err(`unexpected line from ckrun: ${line}`);
        continue;
      }
      const path = line.slice('checkpoint '.length);
      if (state.stall) continue;
      if (state.fail !== undefined) {
        sock.write(`error ${state.fail}\n`);
        continue;
      }
      try {
        const r = writeImage(path);
        sock.write(`ok ${r.bytes} ${r.pause} ${r.total}\n`);
      } catch (e) {
        sock.write(`error cannot write ${path}: ${e.message}\n`);
      }
    }
  });
}

function run() {
  const tick = () => {
    if (state.counter >= state.count) process.exit(state.exit);
    state.counter++;
    out(`count ${state.counter}`);
    setTimeout(tick, state.period);
  };
  setTimeout(tick, state.period);
}

if (restoreImage) {
  if (process.env.FAKE_RESTORE_FAIL) {
    err(`cannot restore ${restoreImage}: ${process.env.FAKE_RESTORE_FAIL}`);
    process.exit(3);
  }
  const { meta, state: saved } = readImage(restoreImage);
  myPid = Number(meta.pid);
  if (!initMode && process.pid !== myPid) err(`warning: running as PID ${process.pid}, the image has PID ${myPid}`);
  if (initMode) err(`restoring in a new PID namespace (I am PID ${process.pid} there)`);
  state = saved;
  out(`restored at ${state.counter}`);
  connectSession(`restored ${myPid}`);
  run();
} else {
  if (opt.hello) connectSession(`hello ${myPid}`);
  run();
}
