// The image schema as data: every record (CBOR map) of an image's header,
// its metadata and a generation's manifest, with every key, its type and
// whether it must be there (docs/image-format.md describes what they mean).
// Both readers refuse a map that does not keep to it: ckrun's (src/image.ts,
// src/generations.ts, through checkRecord below) and the restore host's
// (preload/schema.c, through the tables of preload/schema.h, generated from
// this file by `npm run schema`; test/schema.test.ts fails while the header
// is not current). docs/design.md, "The image schema", says what a new key
// or kind of state touches.
//
// One key is one line:  key: 'TYPE FLAGS'
//   TYPE   uint | int (signed or not) | bool | text | bytes | null | any
//          [T] an array of T | {record} a map of that record | T|U either
//          (alternatives of a union differ in CBOR type: uint|[uint])
//   ?          the writer leaves the key out when it has nothing to say
//   since=L    this build always writes it, images of builds before L (the
//              commit or the issue that added it: a label, not compared) do
//              not have it: the readers accept its absence (restored as
//              before), test/schema.test.ts checks that new images carry it
//   kind=a,b   only in maps whose `kind` is one of these (required there
//              unless ? or since=)
//   unless=k   not required in a map that has key k (a descriptor that
//              shares an earlier one's description has no part of its own)
// A key without ? or since= is required: a map without it is refused. A key
// that is not listed is refused too, naming the record and this file. A new
// key of an existing record is written `?` or `since=`: images of older
// builds lack it. A new kind of descriptor is one line in `file`,
//   pty: '{pty} kind=pty unless=same_as',
// and one record with a line per key of its part.

export const SCHEMA_FILE = 'src/image-schema.ts';
/** preload/ckrun.h's CK_SHIM_ABI: the images this schema describes (others are refused as such) */
export const SHIM_ABI = 1;

export interface RecordSchema {
  /** the heading of docs/image-format.md whose table lists the keys, or `heading @ key`: the row of that key lists them */
  doc: string;
  keys: Record<string, string>;
}

export const IMAGE_SCHEMA = {
  header: {
    doc: '### Header map',
    keys: {
      magic: 'text',
      version: 'uint',
      data_offset: 'uint',
      data_length: 'uint',
      meta_offset: 'uint',
      meta_length: 'uint',
      meta_crc: 'uint',
      file_length: 'uint',
    },
  },
  meta: {
    doc: '## Metadata map',
    keys: {
      version: 'uint',
      created_ns: 'uint',
      hostname: 'text',
      kernel: 'text',
      machine: 'text',
      pid: 'uint',
      ppid: 'uint',
      pgid: 'uint',
      sid: 'uint',
      exe: 'text',
      cmdline: '[text]',
      comm: 'text',
      cwd: 'text',
      umask: 'uint',
      personality: 'uint',
      tty: 'uint since=b3911f3',
      pdeathsig: 'uint since=b3911f3',
      cwd_deleted: '[uint]?',
      attrs: '{proc_attrs} since=issue-11',
      seccomp: '{seccomp}?',
      aio: '[{aio}]?',
      sysv: '{sysv}?',
      stopped: 'uint?',
      stopped_children: '[[uint|bool]]?',
      creds: '{creds} since=59ff20e',
      children: '[{child}] since=b3911f3',
      rlimits: '[[int]]',
      mm: '{mm}',
      auxv: 'bytes',
      vdso: '{vdso}',
      shim_abi: 'uint',
      signal: 'uint',
      ctl_fd: 'int',
      threads: '[{thread}]',
      signals: '{signals}',
      files: '[{file}]',
      memory: '[{region}]',
      mlockall: '[text]?',
      stats: '{stats}',
      track_id: 'uint since=f74aac7',
      images: '[text] since=f74aac7',
      image_ids: '[[uint]] since=f72c03a',
      incremental: '{incremental} since=f74aac7',
    },
  },
  child: {
    doc: '## Metadata map @ children',
    keys: {
      pid: 'uint',
      zombie: 'bool',
      status: 'int?',
      pgid: 'uint?',
      sid: 'uint?',
    },
  },
  creds: {
    doc: '### creds',
    keys: {
      uid: '[uint]',
      gid: '[uint]',
      groups: '[uint]',
      caps: '{caps}',
      securebits: 'uint',
      no_new_privs: 'bool',
      dumpable: 'uint',
    },
  },
  caps: {
    doc: '### creds @ caps',
    keys: {
      effective: 'uint',
      permitted: 'uint',
      inheritable: 'uint',
      bounding: 'uint',
      ambient: 'uint',
    },
  },
  mm: {
    doc: '## Metadata map @ mm',
    keys: {
      start_code: 'uint',
      end_code: 'uint',
      start_data: 'uint',
      end_data: 'uint',
      start_brk: 'uint',
      brk: 'uint',
      start_stack: 'uint',
      arg_start: 'uint',
      arg_end: 'uint',
      env_start: 'uint',
      env_end: 'uint',
    },
  },
  vdso: {
    doc: '## Metadata map @ vdso',
    keys: {
      vvar: '[uint]?',
      vvar_vclock: '[uint]?',
      vdso: '[uint]?',
      vdso_crc: 'uint?',
      text: 'bytes?',
    },
  },
  stats: {
    doc: '## Metadata map @ stats',
    keys: {
      pause_ns: 'uint',
      pages: 'uint',
      bytes: 'uint',
    },
  },
  incremental: {
    doc: '## Metadata map @ incremental',
    keys: {
      parent_used: 'bool',
      tracking: 'text',
    },
  },
  thread: {
    doc: '### thread',
    keys: {
      tid: 'uint',
      leader: 'bool',
      fs_base: 'uint',
      comm: 'text',
      sigmask: 'uint',
      pending: 'uint',
      regs: '{regs}',
      resume: 'bytes',
      sigaltstack: '[int]',
      robust_list: '[uint]',
      clear_tid: 'uint',
      rseq: '[uint]|null',
      attrs: '{thread_attrs} since=issue-11',
      queued: '[[int]] since=issue-11',
      creds: '{thread_creds}?',
    },
  },
  thread_creds: {
    doc: '### thread creds',
    keys: {
      uid: '[uint]',
      gid: '[uint]',
      groups: '[uint]',
      caps: '{caps}',
      securebits: 'uint',
      no_new_privs: 'bool',
    },
  },
  thread_attrs: {
    doc: '### thread attrs',
    keys: {
      policy: 'uint',
      nice: 'int',
      priority: 'uint',
      sched_flags: 'uint',
      runtime: 'uint?',
      deadline: 'uint?',
      period: 'uint?',
      util_min: 'uint?',
      util_max: 'uint?',
      cpus: '[uint]',
      ioprio: 'int',
      timerslack: 'int',
      mce_kill: 'int',
      tsc: 'int',
      pdeathsig: 'int',
      cpuid: 'bool',
      gs_base: 'uint',
      seccomp: 'uint|null',
    },
  },
  proc_attrs: {
    doc: '### attrs',
    keys: {
      oom_score_adj: 'int',
      coredump_filter: 'uint',
      thp_disable: 'uint',
      child_subreaper: 'bool',
      membarrier: 'uint',
      mdwe: 'uint',
      memory_merge: 'uint',
      xcomp_perm: 'uint',
      loginuid: 'uint?',
    },
  },
  seccomp: {
    doc: '### seccomp',
    keys: {
      common: 'uint|null',
      filters: '[{seccomp_filter}]',
    },
  },
  seccomp_filter: {
    doc: '### seccomp @ filters',
    keys: {
      prev: 'int',
      flags: 'uint',
      bpf: 'bytes',
    },
  },
  sysv: {
    doc: '## Metadata map @ sysv',
    keys: {
      objects: '[{sysv_object}]',
      undo: '[[int]]',
    },
  },
  sysv_object: {
    doc: '### sysv (SysV IPC objects)',
    keys: {
      type: 'text',
      key: 'uint',
      id: 'uint',
      uid: 'uint',
      gid: 'uint',
      cuid: 'uint',
      cgid: 'uint',
      mode: 'uint',
      size: 'uint?',
      removed: 'bool?',
      data: '[int]?',
      values: '[uint]?',
      qbytes: 'uint?',
      messages: '[[uint]]?',
    },
  },
  aio: {
    doc: '### aio',
    keys: {
      ctx: 'uint',
      len: 'uint',
      nr_events: 'uint',
      nr: 'uint',
      head: 'uint',
      tail: 'uint',
      events: '[[int]]',
    },
  },
  regs: {
    doc: '### thread @ regs',
    keys: {
      r8: 'uint',
      r9: 'uint',
      r10: 'uint',
      r11: 'uint',
      r12: 'uint',
      r13: 'uint',
      r14: 'uint',
      r15: 'uint',
      rdi: 'uint',
      rsi: 'uint',
      rbp: 'uint',
      rbx: 'uint',
      rdx: 'uint',
      rax: 'uint',
      rcx: 'uint',
      rsp: 'uint',
      rip: 'uint',
      eflags: 'uint',
    },
  },
  signals: {
    doc: '### signals',
    keys: {
      actions: '[[int]]',
      pending: 'uint',
      itimers: '[[int]]',
      timers: '[{timer}] since=2b765d7',
      queued: '[[int]] since=issue-11',
    },
  },
  timer: {
    doc: '### signals @ timers',
    keys: {
      id: 'int',
      clock: 'int',
      notify: 'text',
      signal: 'uint',
      tid: 'int',
      value: 'uint',
      remaining_ns: 'uint',
      interval_ns: 'uint',
    },
  },
  file: {
    doc: '### file (a descriptor)',
    keys: {
      fd: 'uint',
      kind: 'text',
      path: 'text',
      flags: 'uint',
      cloexec: 'bool',
      offset: 'uint?',
      size: 'uint',
      mode: 'uint',
      dev: 'uint',
      ino: 'uint',
      rdev: 'uint',
      mtime_ns: 'uint',
      stdio: 'uint?',
      same_as: 'uint?',
      deleted: '{deleted} kind=deleted unless=same_as',
      memfd: '{memfd} kind=memfd unless=same_as',
      deleted_dir: '{deleted_dir} kind=deleted_dir unless=same_as',
      symlink: '{symlink}? kind=opath',
      mqueue: '{mqueue} kind=mqueue unless=same_as',
      fifo: '{fifo} kind=fifo unless=same_as',
      fanotify: '{fanotify} kind=fanotify unless=same_as',
      locks: '[[text|uint]]?',
      owner: '[uint]?',
      pty: '{pty} kind=pty unless=same_as',
      tty: '{tty}? kind=stdio',
      pipe: '{pipe} kind=pipe unless=same_as',
      eventfd: '{eventfd} kind=eventfd unless=same_as',
      epoll: '[[uint]] kind=epoll unless=same_as',
      timerfd: '{timerfd} kind=timerfd unless=same_as',
      signalfd: '{signalfd} kind=signalfd unless=same_as',
      inotify: '{inotify} kind=inotify unless=same_as',
      pidfd: '{pidfd} kind=pidfd unless=same_as',
      socket: '{socket} kind=socket unless=same_as',
    },
  },
  deleted: {
    doc: '### file (a descriptor) @ deleted',
    keys: {
      size: 'uint',
      uid: 'uint',
      gid: 'uint',
      mode: 'uint',
      atime_ns: 'uint',
      mtime_ns: 'uint',
      extents: '[{extent}]',
    },
  },
  extent: {
    doc: '### file (a descriptor) @ deleted',
    keys: {
      at: 'uint',
      data: '[int]',
    },
  },
  memfd: {
    doc: '### file (a descriptor) @ memfd',
    keys: {
      seals: 'uint',
      size: 'uint',
      uid: 'uint',
      gid: 'uint',
      mode: 'uint',
      atime_ns: 'uint',
      mtime_ns: 'uint',
      extents: '[{extent}]',
    },
  },
  deleted_dir: {
    doc: '### file (a descriptor) @ deleted_dir',
    keys: {
      uid: 'uint',
      gid: 'uint',
      mode: 'uint',
      atime_ns: 'uint',
      mtime_ns: 'uint',
    },
  },
  symlink: {
    doc: '### file (a descriptor) @ symlink',
    keys: {
      target: 'text',
    },
  },
  mqueue: {
    doc: '### file (a descriptor) @ mqueue',
    keys: {
      maxmsg: 'uint',
      msgsize: 'uint',
      uid: 'uint',
      gid: 'uint',
      deleted: 'bool?',
      messages: '[[uint]]?',
      data: '[int]?',
    },
  },
  fifo: {
    doc: '### file (a descriptor) @ fifo',
    keys: {
      capacity: 'uint',
      data: '[int]?',
    },
  },
  fanotify: {
    doc: '### file (a descriptor) @ fanotify',
    keys: {
      flags: 'uint',
      event_flags: 'uint',
      marks: '[{fanotify_mark}]',
    },
  },
  fanotify_mark: {
    doc: '### file (a descriptor) @ fanotify',
    keys: {
      on: 'text',
      mflags: 'uint',
      mask: 'uint',
      ignored_mask: 'uint',
      mnt_id: 'uint?',
      sdev: 'uint?',
      handle_type: 'uint?',
      handle: 'bytes?',
    },
  },
  pty: {
    doc: '### file (a descriptor) @ pty',
    keys: {
      end: 'text',
      index: 'uint',
      hung_up: 'bool?',
      locked: 'bool?',
      packet: 'bool?',
      data: '[int]?',
      input: '[int]?',
      lines: '[uint]?',
      tty: '{tty}?',
      owner: '[uint]?',
    },
  },
  tty: {
    doc: '### file (a descriptor) @ tty',
    keys: {
      termios: '[uint|bytes]',
      winsize: '[uint]',
      sid: 'uint?',
      fg: 'uint?',
    },
  },
  pipe: {
    doc: '### file (a descriptor) @ pipe',
    keys: {
      id: 'uint',
      end: 'text',
      peer_outside: 'bool',
      capacity: 'uint?',
      data: '[int]?',
    },
  },
  eventfd: {
    doc: '### file (a descriptor) @ eventfd',
    keys: {
      count: 'uint',
      semaphore: 'bool',
    },
  },
  timerfd: {
    doc: '### file (a descriptor) @ timerfd',
    keys: {
      clock: 'int',
      settime_flags: 'uint',
      value_ns: 'uint',
      interval_ns: 'uint',
      ticks: 'uint',
      deadline_ns: 'uint?',
    },
  },
  signalfd: {
    doc: '### file (a descriptor) @ signalfd',
    keys: {
      mask: 'uint',
    },
  },
  inotify: {
    doc: '### file (a descriptor) @ inotify',
    keys: {
      watches: '[[uint|text]]',
      queued: 'uint',
    },
  },
  pidfd: {
    doc: '### file (a descriptor) @ pidfd',
    keys: {
      pid: 'uint',
      relation: 'text',
    },
  },
  socket: {
    doc: '### socket (a socket descriptor)',
    keys: {
      family: 'uint',
      type: 'uint',
      protocol: 'uint',
      options: '[[uint|bytes]]',
      filter: 'bytes?',
      filter_locked: 'uint?',
      inet: '{inet}?',
      unix: '{unix}?',
      netlink: '{netlink}?',
      packet: '{packet}?',
    },
  },
  netlink: {
    doc: '### socket → `netlink` (a netlink socket)',
    keys: {
      portid: 'uint',
      groups: '[uint]?',
      dst_portid: 'uint?',
      dst_groups: 'uint?',
    },
  },
  packet: {
    doc: '### socket → `packet` (a packet socket)',
    keys: {
      ifname: 'text?',
      num: 'uint',
      copy_thresh: 'uint?',
      fanout: 'uint?',
      rx_ring: '[uint]?',
      tx_ring: '[uint]?',
      memberships: '[[text|uint|bytes]]?',
    },
  },
  inet: {
    doc: '### socket → `inet` (TCP and UDP over IPv4 and IPv6)',
    keys: {
      local: '[bytes|uint]',
      peer: '[bytes|uint]?',
      tcp_state: 'uint?',
      ended: 'bool?',
      backlog: 'uint?',
      recv_queue: '[int]?',
      unsent_queue: '[int]?',
      send_queue: '[int]?',
      send_unsent: 'uint?',
      send_seq: 'uint?',
      recv_seq: 'uint?',
      repair: '[uint]?',
      datagrams: '[[bytes|int]]?',
      shutdown: 'uint?',
    },
  },
  unix: {
    doc: '### socket.unix (a Unix domain socket)',
    keys: {
      ino: 'uint',
      state: 'uint',
      name: 'bytes?',
      peer: 'uint?',
      peer_name: 'bytes?',
      shutdown: 'uint?',
      sndbuf: 'uint',
      rcvbuf: 'uint',
      backlog: 'uint?',
      pending: '[uint]?',
      pending_bytes: '[uint]?',
      msgs: '[uint|[uint|[{passed}]|bytes]]?',
      queue: '[int]?',
      file_mode: 'uint?',
      file_uid: 'uint?',
      file_gid: 'uint?',
      file_gone: 'bool?',
      reset: 'bool?',
    },
  },
  passed: {
    doc: '### socket.unix (a Unix domain socket) @ msgs',
    keys: {
      kind: 'text',
      path: 'text kind=file',
      flags: 'uint kind=file',
      offset: 'uint kind=file',
      id: 'uint kind=pipe',
      end: 'text kind=pipe',
      capacity: 'uint? kind=pipe',
      data: '[int]? kind=pipe',
      ino: 'uint kind=socket',
    },
  },
  region: {
    doc: '### region (a mapping)',
    keys: {
      start: 'uint',
      end: 'uint',
      prot: 'uint',
      shared: 'bool',
      kind: 'text',
      name: 'text',
      vmflags: '[text]?',
      huge_page: 'uint?',
      file: '{region_file}?',
      guards: '[[uint]]?',
      shim_file: '[uint]?',
      open_deleted: '[uint]?',
      runs: '[[int]]',
      bytes: 'uint',
      shm: '[uint]?',
      shm_object: '{shm_object}?',
    },
  },
  region_file: {
    doc: '### region (a mapping) @ file',
    keys: {
      path: 'text',
      offset: 'uint',
      dev: 'uint',
      ino: 'uint',
      size: 'uint',
      mtime_ns: 'uint',
    },
  },
  shm_object: {
    doc: '### region (a mapping) @ shm_object',
    keys: {
      kind: 'text',
      name: 'text kind=memfd',
      path: 'text kind=posix',
      key: 'int kind=sysv',
      id: 'int kind=sysv',
      mode: 'uint kind=sysv',
      size: 'uint? kind=sysv,memfd,posix,anon',
    },
  },
  manifest: {
    doc: '## `manifest.cbor`',
    keys: {
      format: 'text',
      version: 'uint',
      generation: 'uint',
      created_ns: 'uint',
      argv: '[text]',
      cwd: 'text',
      root: 'uint',
      processes: '[{process}]',
      shared_files: '[[[uint]]] since=9eadff3',
      shm_owners: '[[uint]] since=f72c03a',
      compressed: 'text?',
      files: '{files}?',
      contents: '[{content}]?',
      portable: 'bool?',
    },
  },
  content: {
    doc: '## Mapped files by content (`contents` in the manifest)',
    keys: {
      path: 'text',
      dev: 'uint',
      ino: 'uint',
      size: 'uint',
      mtime_ns: 'uint',
      ctime_ns: 'uint',
      sha256: 'bytes',
    },
  },
  files: {
    doc: '## Written files (`files` in the manifest, `files/` in the generation)',
    keys: {
      policy: 'text',
      saved: '[{saved_file}]',
      stdio: '[{stdio_file}]',
      dirs: '[{snapshot_dir}]?',
    },
  },
  snapshot_dir: {
    doc: '## Written files (`files` in the manifest, `files/` in the generation) @ dirs',
    keys: {
      path: 'text',
      list: 'text',
      list_crc: 'uint',
      entries: 'uint',
      bytes: 'uint',
      stored: 'uint',
    },
  },
  saved_file: {
    doc: '## Written files (`files` in the manifest, `files/` in the generation) @ saved',
    keys: {
      path: 'text',
      dev: 'uint',
      ino: 'uint',
      size: 'uint',
      mode: 'uint',
      uid: 'uint',
      gid: 'uint',
      atime_ns: 'uint',
      mtime_ns: 'uint',
      how: 'text',
      block: 'uint',
      table: 'text',
      table_crc: 'uint',
      sources: '[text]',
      stored: 'uint',
    },
  },
  stdio_file: {
    doc: '## Written files (`files` in the manifest, `files/` in the generation) @ stdio',
    keys: {
      fd: 'uint',
      path: 'text',
      dev: 'uint',
      ino: 'uint',
      offset: 'uint',
      flags: 'uint',
      same_as: 'uint?',
    },
  },
  process: {
    doc: '## `manifest.cbor` @ processes',
    keys: {
      pid: 'uint',
      image: 'text',
      bytes: 'uint since=f72c03a',
      header_crc: 'uint since=f72c03a',
      pause_ns: 'uint',
      ppid: 'uint since=9eadff3',
      pgid: 'uint since=9eadff3',
      sid: 'uint since=9eadff3',
      compressed_bytes: 'uint?',
      chain: 'uint since=f72c03a',
    },
  },
} satisfies Record<string, RecordSchema>;

export type RecordName = keyof typeof IMAGE_SCHEMA;

// ---- the key specifications, parsed ----

export type TypeNode =
  | { op: 'uint' | 'int' | 'bool' | 'text' | 'bytes' | 'null' | 'any' }
  | { op: 'array'; item: TypeNode }
  | { op: 'record'; name: string }
  | { op: 'union'; alts: TypeNode[] };

export interface KeySpec {
  key: string;
  type: TypeNode;
  /** the text of the type, as written */
  typeText: string;
  /** a map without it is refused (for kind-bound keys: a map of one of those kinds) */
  required: boolean;
  optional: boolean;
  /** the commit that added it, when older images lack it */
  since: string | undefined;
  /** the kinds whose maps may have it; undefined: any map of the record */
  kinds: string[] | undefined;
  /** not required in a map that has this key */
  unless: string | undefined;
}

const SCALARS = new Set(['uint', 'int', 'bool', 'text', 'bytes', 'null', 'any']);

/** Parses `TYPE` of a key's line (see the top of this file). */
export function parseType(text: string): TypeNode {
  let i = 0;
  const fail = (why: string): never => {
    throw new Error(`${SCHEMA_FILE}: type "${text}": ${why} at character ${i}`);
  };
  const union = (): TypeNode => {
    const alts = [one()];
    while (text[i] === '|') {
      i++;
      alts.push(one());
    }
    return alts.length === 1 ? alts[0] : { op: 'union', alts };
  };
  const one = (): TypeNode => {
    if (text[i] === '[') {
      i++;
      const item = union();
      if (text[i++] !== ']') fail('expected ]');
      return { op: 'array', item };
    }
    if (text[i] === '{') {
      const end = text.indexOf('}', i);
      if (end < 0) fail('expected }');
      const name = text.slice(i + 1, end);
      i = end + 1;
      if (!(name in IMAGE_SCHEMA)) fail(`no record "${name}"`);
      return { op: 'record', name };
    }
    const m = /^[a-z]+/.exec(text.slice(i));
    if (!m || !SCALARS.has(m[0])) return fail('expected a type');
    i += m[0].length;
    return { op: m[0] as 'uint' };
  };
  const t = union();
  if (i !== text.length) fail('unexpected text');
  return t;
}

/** Parses a key's line: `TYPE[?] [since=C] [kind=a,b] [unless=k]`. */
export function parseKeySpec(key: string, line: string): KeySpec {
  const [typeWord, ...flags] = line.trim().split(/\s+/);
  const optional = typeWord.endsWith('?');
  const typeText = optional ? typeWord.slice(0, -1) : typeWord;
  let since: string | undefined;
  let kinds: string[] | undefined;
  let unless: string | undefined;
  for (const f of flags) {
    if (f.startsWith('since=')) since = f.slice(6);
    else if (f.startsWith('kind=')) kinds = f.slice(5).split(',');
    else if (f.startsWith('unless=')) unless = f.slice(7);
    else throw new Error(`${SCHEMA_FILE}: key "${key}": unknown flag "${f}" (flags: ?, since=COMMIT, kind=a,b, unless=KEY)`);
  }
  return { key, type: parseType(typeText), typeText, required: !optional && since === undefined, optional, since, kinds, unless };
}

const parsed = new Map<string, KeySpec[]>();

/** The keys of a record, parsed, in the schema's order. */
export function recordKeys(name: string): KeySpec[] {
  let keys = parsed.get(name);
  if (!keys) {
    const r = (IMAGE_SCHEMA as Record<string, RecordSchema>)[name];
    if (!r) throw new Error(`${SCHEMA_FILE}: no record "${name}"`);
    keys = Object.entries(r.keys).map(([k, line]) => parseKeySpec(k, line));
    for (const k of keys)
      if (k.unless !== undefined && !keys.some((o) => o.key === k.unless))
        throw new Error(`${SCHEMA_FILE}: ${name}.${k.key}: unless=${k.unless} names no key of ${name}`);
    parsed.set(name, keys);
  }
  return keys;
}

export function recordNames(): string[] {
  return Object.keys(IMAGE_SCHEMA);
}

// ---- checking a decoded value ----

/** What a value is, in the schema's words. */
function kindOfValue(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'bigint') return v < 0n ? 'negative int' : 'uint';
  if (typeof v === 'number') return Number.isInteger(v) ? (v < 0 ? 'negative int' : 'uint') : 'float';
  if (typeof v === 'string') return 'text';
  if (v instanceof Uint8Array) return 'bytes';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'object') return 'map';
  return typeof v;
}

/** The schema's type of a value, for the line a developer adds (a map's record is theirs to name). */
function guessType(v: unknown): string {
  const k = kindOfValue(v);
  return k === 'negative int' ? 'int' : k === 'array' ? '[...]' : k === 'map' ? '{...}' : k;
}

function typeName(t: TypeNode): string {
  switch (t.op) {
    case 'array':
      return `[${typeName(t.item)}]`;
    case 'record':
      return `{${t.name}}`;
    case 'union':
      return t.alts.map(typeName).join('|');
    default:
      return t.op;
  }
}

/** The CBOR major class a type needs: a union picks its alternative by it. */
function classOf(t: TypeNode): string | undefined {
  switch (t.op) {
    case 'uint':
    case 'int':
      return 'int';
    case 'array':
      return 'array';
    case 'record':
      return 'map';
    case 'any':
    case 'union':
      return undefined;
    default:
      return t.op;
  }
}

function classOfValue(v: unknown): string {
  const k = kindOfValue(v);
  return k === 'uint' || k === 'negative int' ? 'int' : k;
}

/** Why v does not keep to type t at `where` (a path like files[3].pipe), or undefined. */
function checkValue(v: unknown, t: TypeNode, where: string): string | undefined {
  const got = kindOfValue(v);
  switch (t.op) {
    case 'any':
      return undefined;
    case 'uint':
      return got === 'uint' ? undefined : `${where} is ${got}, not uint`;
    case 'int':
      return got === 'uint' || got === 'negative int' ? undefined : `${where} is ${got}, not int`;
    case 'bool':
    case 'text':
    case 'bytes':
    case 'null':
      return got === t.op ? undefined : `${where} is ${got}, not ${t.op}`;
    case 'array': {
      if (!Array.isArray(v)) return `${where} is ${got}, not ${typeName(t)}`;
      for (let i = 0; i < v.length; i++) {
        const why = checkValue(v[i], t.item, `${where}[${i}]`);
        if (why) return why;
      }
      return undefined;
    }
    case 'record':
      if (got !== 'map') return `${where} is ${got}, not a map ({${t.name}})`;
      return checkRecordAt(v as Record<string, unknown>, t.name, where);
    case 'union': {
      const alt = t.alts.find((a) => classOf(a) === undefined || classOf(a) === classOfValue(v));
      if (!alt) return `${where} is ${got}, not ${typeName(t)}`;
      return checkValue(v, alt, where);
    }
  }
}

function checkRecordAt(m: Record<string, unknown>, record: string, where: string): string | undefined {
  const keys = recordKeys(record);
  const kind = typeof m.kind === 'string' ? m.kind : undefined;
  const at = where ? `${where}: ` : '';
  for (const [k, v] of Object.entries(m)) {
    const spec = keys.find((s) => s.key === k);
    if (!spec)
      return (
        `${at}unknown key "${k}" (record "${record}"${kind ? ` of kind ${kind}` : ''}): an image of a newer ckrun (restart it with that one) ` +
        `or a damaged one; a ckrun developer adding the key adds a line such as ${k}: '${guessType(v)}?' to ${record}.keys in ${SCHEMA_FILE} and runs npm run schema`
      );
    if (spec.kinds && !(kind !== undefined && spec.kinds.includes(kind)))
      return `${at}key "${k}" belongs to record "${record}" of kind ${spec.kinds.join(' or ')}, not of kind ${kind ?? '(none)'}`;
    const why = checkValue(v, spec.type, where ? `${where}.${k}` : k);
    if (why) return why;
  }
  for (const spec of keys) {
    if (!spec.required || hasKey(m, spec.key) || (spec.unless !== undefined && hasKey(m, spec.unless))) continue;
    if (spec.kinds && !(kind !== undefined && spec.kinds.includes(kind))) continue;
    return (
      `${at}required key "${spec.key}" (record "${record}"${spec.kinds ? ` of kind ${kind}` : ''}) is missing: a damaged image, ` +
      `or a writer that no longer writes it (a ckrun developer changing that updates ${record}.keys in ${SCHEMA_FILE})`
    );
  }
  return undefined;
}

function hasKey(m: Record<string, unknown>, k: string): boolean {
  return Object.prototype.hasOwnProperty.call(m, k);
}

/**
 * Why the decoded map m is not a `record` of the schema (an unknown key, a
 * missing required key, a value of another type; the first one found,
 * naming its path and key), or undefined when it keeps to it.
 */
export function checkRecord(m: unknown, record: RecordName): string | undefined {
  if (kindOfValue(m) !== 'map') return `the ${record} is ${kindOfValue(m)}, not a map`;
  return checkRecordAt(m as Record<string, unknown>, record, '');
}
