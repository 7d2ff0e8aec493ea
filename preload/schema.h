/* The image schema as the restore host checks it (preload/schema.c).
 * GENERATED from src/image-schema.ts by `npm run schema`: do not edit; change
 * the schema and run it again (test/schema.test.ts fails while this file
 * is not current). */
#ifndef CK_SCHEMA_H
#define CK_SCHEMA_H

/* the shim ABI the schema describes (schema.c asserts it is ckrun.h's) */
#define CK_SCHEMA_SHIM_ABI 1

enum { CKS_UINT, CKS_INT, CKS_BOOL, CKS_TEXT, CKS_BYTES, CKS_NULL, CKS_ANY, CKS_ARRAY, CKS_RECORD, CKS_UNION };

/* array: a = the items' type; record: a = the record; union: the a..a+b-1
 * of ck_schema_alts */
struct ck_schema_type {
	unsigned char op;
	unsigned short a, b;
};

struct ck_schema_key {
	const char *name;
	unsigned short type;
	unsigned char required;
	const char *kinds; /* "a,b": only in maps whose kind is one of these; 0: any */
	const char *unless; /* not required in a map that has this key; 0: none */
};

struct ck_schema_record {
	const char *name;
	const struct ck_schema_key *keys;
	unsigned nkeys;
};

enum ck_schema_record_id {
	CK_SCHEMA_HEADER = 0,
	CK_SCHEMA_META = 1,
	CK_SCHEMA_CHILD = 2,
	CK_SCHEMA_CREDS = 3,
	CK_SCHEMA_CAPS = 4,
	CK_SCHEMA_MM = 5,
	CK_SCHEMA_VDSO = 6,
	CK_SCHEMA_STATS = 7,
	CK_SCHEMA_INCREMENTAL = 8,
	CK_SCHEMA_THREAD = 9,
	CK_SCHEMA_THREAD_CREDS = 10,
	CK_SCHEMA_THREAD_ATTRS = 11,
	CK_SCHEMA_PROC_ATTRS = 12,
	CK_SCHEMA_SECCOMP = 13,
	CK_SCHEMA_SECCOMP_FILTER = 14,
	CK_SCHEMA_SYSV = 15,
	CK_SCHEMA_SYSV_OBJECT = 16,
	CK_SCHEMA_AIO = 17,
	CK_SCHEMA_REGS = 18,
	CK_SCHEMA_SIGNALS = 19,
	CK_SCHEMA_TIMER = 20,
	CK_SCHEMA_FILE = 21,
	CK_SCHEMA_DELETED = 22,
	CK_SCHEMA_EXTENT = 23,
	CK_SCHEMA_MEMFD = 24,
	CK_SCHEMA_DELETED_DIR = 25,
	CK_SCHEMA_SYMLINK = 26,
	CK_SCHEMA_MQUEUE = 27,
	CK_SCHEMA_FIFO = 28,
	CK_SCHEMA_FANOTIFY = 29,
	CK_SCHEMA_FANOTIFY_MARK = 30,
	CK_SCHEMA_PTY = 31,
	CK_SCHEMA_TTY = 32,
	CK_SCHEMA_PIPE = 33,
	CK_SCHEMA_EVENTFD = 34,
	CK_SCHEMA_TIMERFD = 35,
	CK_SCHEMA_SIGNALFD = 36,
	CK_SCHEMA_INOTIFY = 37,
	CK_SCHEMA_PIDFD = 38,
	CK_SCHEMA_SOCKET = 39,
	CK_SCHEMA_NETLINK = 40,
	CK_SCHEMA_PACKET = 41,
	CK_SCHEMA_INET = 42,
	CK_SCHEMA_UNIX = 43,
	CK_SCHEMA_PASSED = 44,
	CK_SCHEMA_REGION = 45,
	CK_SCHEMA_REGION_FILE = 46,
	CK_SCHEMA_SHM_OBJECT = 47,
	CK_SCHEMA_MANIFEST = 48,
	CK_SCHEMA_CONTENT = 49,
	CK_SCHEMA_FILES = 50,
	CK_SCHEMA_SNAPSHOT_DIR = 51,
	CK_SCHEMA_SAVED_FILE = 52,
	CK_SCHEMA_STDIO_FILE = 53,
	CK_SCHEMA_PROCESS = 54,
};

#ifdef CK_SCHEMA_TABLES
static const struct ck_schema_key ck_schema_keys_header[] = {
	{"magic", 0, 1, 0, 0}, /* text */
	{"version", 1, 1, 0, 0}, /* uint */
	{"data_offset", 1, 1, 0, 0}, /* uint */
	{"data_length", 1, 1, 0, 0}, /* uint */
	{"meta_offset", 1, 1, 0, 0}, /* uint */
	{"meta_length", 1, 1, 0, 0}, /* uint */
	{"meta_crc", 1, 1, 0, 0}, /* uint */
	{"file_length", 1, 1, 0, 0}, /* uint */
};
static const struct ck_schema_key ck_schema_keys_meta[] = {
	{"version", 1, 1, 0, 0}, /* uint */
	{"created_ns", 1, 1, 0, 0}, /* uint */
	{"hostname", 0, 1, 0, 0}, /* text */
	{"kernel", 0, 1, 0, 0}, /* text */
	{"machine", 0, 1, 0, 0}, /* text */
	{"pid", 1, 1, 0, 0}, /* uint */
	{"ppid", 1, 1, 0, 0}, /* uint */
	{"pgid", 1, 1, 0, 0}, /* uint */
	{"sid", 1, 1, 0, 0}, /* uint */
	{"exe", 0, 1, 0, 0}, /* text */
	{"cmdline", 2, 1, 0, 0}, /* [text] */
	{"comm", 0, 1, 0, 0}, /* text */
	{"cwd", 0, 1, 0, 0}, /* text */
	{"umask", 1, 1, 0, 0}, /* uint */
	{"personality", 1, 1, 0, 0}, /* uint */
	{"tty", 1, 0, 0, 0}, /* uint since=b3911f3 */
	{"pdeathsig", 1, 0, 0, 0}, /* uint since=b3911f3 */
	{"cwd_deleted", 3, 0, 0, 0}, /* [uint]? */
	{"attrs", 4, 0, 0, 0}, /* {proc_attrs} since=issue-11 */
	{"seccomp", 5, 0, 0, 0}, /* {seccomp}? */
	{"aio", 7, 0, 0, 0}, /* [{aio}]? */
	{"sysv", 8, 0, 0, 0}, /* {sysv}? */
	{"stopped", 1, 0, 0, 0}, /* uint? */
	{"stopped_children", 12, 0, 0, 0}, /* [[uint|bool]]? */
	{"creds", 13, 0, 0, 0}, /* {creds} since=59ff20e */
	{"children", 15, 0, 0, 0}, /* [{child}] since=b3911f3 */
	{"rlimits", 18, 1, 0, 0}, /* [[int]] */
	{"mm", 19, 1, 0, 0}, /* {mm} */
	{"auxv", 20, 1, 0, 0}, /* bytes */
	{"vdso", 21, 1, 0, 0}, /* {vdso} */
	{"shim_abi", 1, 1, 0, 0}, /* uint */
	{"signal", 1, 1, 0, 0}, /* uint */
	{"ctl_fd", 16, 1, 0, 0}, /* int */
	{"threads", 23, 1, 0, 0}, /* [{thread}] */
	{"signals", 24, 1, 0, 0}, /* {signals} */
	{"files", 26, 1, 0, 0}, /* [{file}] */
	{"memory", 28, 1, 0, 0}, /* [{region}] */
	{"mlockall", 2, 0, 0, 0}, /* [text]? */
	{"stats", 29, 1, 0, 0}, /* {stats} */
	{"track_id", 1, 0, 0, 0}, /* uint since=f74aac7 */
	{"images", 2, 0, 0, 0}, /* [text] since=f74aac7 */
	{"image_ids", 30, 0, 0, 0}, /* [[uint]] since=f72c03a */
	{"incremental", 31, 0, 0, 0}, /* {incremental} since=f74aac7 */
};
static const struct ck_schema_key ck_schema_keys_child[] = {
	{"pid", 1, 1, 0, 0}, /* uint */
	{"zombie", 9, 1, 0, 0}, /* bool */
	{"status", 16, 0, 0, 0}, /* int? */
	{"pgid", 1, 0, 0, 0}, /* uint? */
	{"sid", 1, 0, 0, 0}, /* uint? */
};
static const struct ck_schema_key ck_schema_keys_creds[] = {
	{"uid", 3, 1, 0, 0}, /* [uint] */
	{"gid", 3, 1, 0, 0}, /* [uint] */
	{"groups", 3, 1, 0, 0}, /* [uint] */
	{"caps", 32, 1, 0, 0}, /* {caps} */
	{"securebits", 1, 1, 0, 0}, /* uint */
	{"no_new_privs", 9, 1, 0, 0}, /* bool */
	{"dumpable", 1, 1, 0, 0}, /* uint */
};
static const struct ck_schema_key ck_schema_keys_caps[] = {
	{"effective", 1, 1, 0, 0}, /* uint */
	{"permitted", 1, 1, 0, 0}, /* uint */
	{"inheritable", 1, 1, 0, 0}, /* uint */
	{"bounding", 1, 1, 0, 0}, /* uint */
	{"ambient", 1, 1, 0, 0}, /* uint */
};
static const struct ck_schema_key ck_schema_keys_mm[] = {
	{"start_code", 1, 1, 0, 0}, /* uint */
	{"end_code", 1, 1, 0, 0}, /* uint */
	{"start_data", 1, 1, 0, 0}, /* uint */
	{"end_data", 1, 1, 0, 0}, /* uint */
	{"start_brk", 1, 1, 0, 0}, /* uint */
	{"brk", 1, 1, 0, 0}, /* uint */
	{"start_stack", 1, 1, 0, 0}, /* uint */
	{"arg_start", 1, 1, 0, 0}, /* uint */
	{"arg_end", 1, 1, 0, 0}, /* uint */
	{"env_start", 1, 1, 0, 0}, /* uint */
	{"env_end", 1, 1, 0, 0}, /* uint */
};
static const struct ck_schema_key ck_schema_keys_vdso[] = {
	{"vvar", 3, 0, 0, 0}, /* [uint]? */
	{"vvar_vclock", 3, 0, 0, 0}, /* [uint]? */
	{"vdso", 3, 0, 0, 0}, /* [uint]? */
	{"vdso_crc", 1, 0, 0, 0}, /* uint? */
	{"text", 20, 0, 0, 0}, /* bytes? */
};
static const struct ck_schema_key ck_schema_keys_stats[] = {
	{"pause_ns", 1, 1, 0, 0}, /* uint */
	{"pages", 1, 1, 0, 0}, /* uint */
	{"bytes", 1, 1, 0, 0}, /* uint */
};
static const struct ck_schema_key ck_schema_keys_incremental[] = {
	{"parent_used", 9, 1, 0, 0}, /* bool */
	{"tracking", 0, 1, 0, 0}, /* text */
};
static const struct ck_schema_key ck_schema_keys_thread[] = {
	{"tid", 1, 1, 0, 0}, /* uint */
	{"leader", 9, 1, 0, 0}, /* bool */
	{"fs_base", 1, 1, 0, 0}, /* uint */
	{"comm", 0, 1, 0, 0}, /* text */
	{"sigmask", 1, 1, 0, 0}, /* uint */
	{"pending", 1, 1, 0, 0}, /* uint */
	{"regs", 33, 1, 0, 0}, /* {regs} */
	{"resume", 20, 1, 0, 0}, /* bytes */
	{"sigaltstack", 17, 1, 0, 0}, /* [int] */
	{"robust_list", 3, 1, 0, 0}, /* [uint] */
	{"clear_tid", 1, 1, 0, 0}, /* uint */
	{"rseq", 35, 1, 0, 0}, /* [uint]|null */
	{"attrs", 36, 0, 0, 0}, /* {thread_attrs} since=issue-11 */
	{"queued", 18, 0, 0, 0}, /* [[int]] since=issue-11 */
	{"creds", 37, 0, 0, 0}, /* {thread_creds}? */
};
static const struct ck_schema_key ck_schema_keys_thread_creds[] = {
	{"uid", 3, 1, 0, 0}, /* [uint] */
	{"gid", 3, 1, 0, 0}, /* [uint] */
	{"groups", 3, 1, 0, 0}, /* [uint] */
	{"caps", 32, 1, 0, 0}, /* {caps} */
	{"securebits", 1, 1, 0, 0}, /* uint */
	{"no_new_privs", 9, 1, 0, 0}, /* bool */
};
static const struct ck_schema_key ck_schema_keys_thread_attrs[] = {
	{"policy", 1, 1, 0, 0}, /* uint */
	{"nice", 16, 1, 0, 0}, /* int */
	{"priority", 1, 1, 0, 0}, /* uint */
	{"sched_flags", 1, 1, 0, 0}, /* uint */
	{"runtime", 1, 0, 0, 0}, /* uint? */
	{"deadline", 1, 0, 0, 0}, /* uint? */
	{"period", 1, 0, 0, 0}, /* uint? */
	{"util_min", 1, 0, 0, 0}, /* uint? */
	{"util_max", 1, 0, 0, 0}, /* uint? */
	{"cpus", 3, 1, 0, 0}, /* [uint] */
	{"ioprio", 16, 1, 0, 0}, /* int */
	{"timerslack", 16, 1, 0, 0}, /* int */
	{"mce_kill", 16, 1, 0, 0}, /* int */
	{"tsc", 16, 1, 0, 0}, /* int */
	{"pdeathsig", 16, 1, 0, 0}, /* int */
	{"cpuid", 9, 1, 0, 0}, /* bool */
	{"gs_base", 1, 1, 0, 0}, /* uint */
	{"seccomp", 38, 1, 0, 0}, /* uint|null */
};
static const struct ck_schema_key ck_schema_keys_proc_attrs[] = {
	{"oom_score_adj", 16, 1, 0, 0}, /* int */
	{"coredump_filter", 1, 1, 0, 0}, /* uint */
	{"thp_disable", 1, 1, 0, 0}, /* uint */
	{"child_subreaper", 9, 1, 0, 0}, /* bool */
	{"membarrier", 1, 1, 0, 0}, /* uint */
	{"mdwe", 1, 1, 0, 0}, /* uint */
	{"memory_merge", 1, 1, 0, 0}, /* uint */
	{"xcomp_perm", 1, 1, 0, 0}, /* uint */
	{"loginuid", 1, 0, 0, 0}, /* uint? */
};
static const struct ck_schema_key ck_schema_keys_seccomp[] = {
	{"common", 39, 1, 0, 0}, /* uint|null */
	{"filters", 41, 1, 0, 0}, /* [{seccomp_filter}] */
};
static const struct ck_schema_key ck_schema_keys_seccomp_filter[] = {
	{"prev", 16, 1, 0, 0}, /* int */
	{"flags", 1, 1, 0, 0}, /* uint */
	{"bpf", 20, 1, 0, 0}, /* bytes */
};
static const struct ck_schema_key ck_schema_keys_sysv[] = {
	{"objects", 43, 1, 0, 0}, /* [{sysv_object}] */
	{"undo", 18, 1, 0, 0}, /* [[int]] */
};
static const struct ck_schema_key ck_schema_keys_sysv_object[] = {
	{"type", 0, 1, 0, 0}, /* text */
	{"key", 1, 1, 0, 0}, /* uint */
	{"id", 1, 1, 0, 0}, /* uint */
	{"uid", 1, 1, 0, 0}, /* uint */
	{"gid", 1, 1, 0, 0}, /* uint */
	{"cuid", 1, 1, 0, 0}, /* uint */
	{"cgid", 1, 1, 0, 0}, /* uint */
	{"mode", 1, 1, 0, 0}, /* uint */
	{"size", 1, 0, 0, 0}, /* uint? */
	{"removed", 9, 0, 0, 0}, /* bool? */
	{"data", 17, 0, 0, 0}, /* [int]? */
	{"values", 3, 0, 0, 0}, /* [uint]? */
	{"qbytes", 1, 0, 0, 0}, /* uint? */
	{"messages", 30, 0, 0, 0}, /* [[uint]]? */
};
static const struct ck_schema_key ck_schema_keys_aio[] = {
	{"ctx", 1, 1, 0, 0}, /* uint */
	{"len", 1, 1, 0, 0}, /* uint */
	{"nr_events", 1, 1, 0, 0}, /* uint */
	{"nr", 1, 1, 0, 0}, /* uint */
	{"head", 1, 1, 0, 0}, /* uint */
	{"tail", 1, 1, 0, 0}, /* uint */
	{"events", 18, 1, 0, 0}, /* [[int]] */
};
static const struct ck_schema_key ck_schema_keys_regs[] = {
	{"r8", 1, 1, 0, 0}, /* uint */
	{"r9", 1, 1, 0, 0}, /* uint */
	{"r10", 1, 1, 0, 0}, /* uint */
	{"r11", 1, 1, 0, 0}, /* uint */
	{"r12", 1, 1, 0, 0}, /* uint */
	{"r13", 1, 1, 0, 0}, /* uint */
	{"r14", 1, 1, 0, 0}, /* uint */
	{"r15", 1, 1, 0, 0}, /* uint */
	{"rdi", 1, 1, 0, 0}, /* uint */
	{"rsi", 1, 1, 0, 0}, /* uint */
	{"rbp", 1, 1, 0, 0}, /* uint */
	{"rbx", 1, 1, 0, 0}, /* uint */
	{"rdx", 1, 1, 0, 0}, /* uint */
	{"rax", 1, 1, 0, 0}, /* uint */
	{"rcx", 1, 1, 0, 0}, /* uint */
	{"rsp", 1, 1, 0, 0}, /* uint */
	{"rip", 1, 1, 0, 0}, /* uint */
	{"eflags", 1, 1, 0, 0}, /* uint */
};
static const struct ck_schema_key ck_schema_keys_signals[] = {
	{"actions", 18, 1, 0, 0}, /* [[int]] */
	{"pending", 1, 1, 0, 0}, /* uint */
	{"itimers", 18, 1, 0, 0}, /* [[int]] */
	{"timers", 45, 0, 0, 0}, /* [{timer}] since=2b765d7 */
	{"queued", 18, 0, 0, 0}, /* [[int]] since=issue-11 */
};
static const struct ck_schema_key ck_schema_keys_timer[] = {
	{"id", 16, 1, 0, 0}, /* int */
	{"clock", 16, 1, 0, 0}, /* int */
	{"notify", 0, 1, 0, 0}, /* text */
	{"signal", 1, 1, 0, 0}, /* uint */
	{"tid", 16, 1, 0, 0}, /* int */
	{"value", 1, 1, 0, 0}, /* uint */
	{"remaining_ns", 1, 1, 0, 0}, /* uint */
	{"interval_ns", 1, 1, 0, 0}, /* uint */
};
static const struct ck_schema_key ck_schema_keys_file[] = {
	{"fd", 1, 1, 0, 0}, /* uint */
	{"kind", 0, 1, 0, 0}, /* text */
	{"path", 0, 1, 0, 0}, /* text */
	{"flags", 1, 1, 0, 0}, /* uint */
	{"cloexec", 9, 1, 0, 0}, /* bool */
	{"offset", 1, 0, 0, 0}, /* uint? */
	{"size", 1, 1, 0, 0}, /* uint */
	{"mode", 1, 1, 0, 0}, /* uint */
	{"dev", 1, 1, 0, 0}, /* uint */
	{"ino", 1, 1, 0, 0}, /* uint */
	{"rdev", 1, 1, 0, 0}, /* uint */
	{"mtime_ns", 1, 1, 0, 0}, /* uint */
	{"stdio", 1, 0, 0, 0}, /* uint? */
	{"same_as", 1, 0, 0, 0}, /* uint? */
	{"deleted", 46, 1, "deleted", "same_as"}, /* {deleted} */
	{"memfd", 47, 1, "memfd", "same_as"}, /* {memfd} */
	{"deleted_dir", 48, 1, "deleted_dir", "same_as"}, /* {deleted_dir} */
	{"symlink", 49, 0, "opath", 0}, /* {symlink}? */
	{"mqueue", 50, 1, "mqueue", "same_as"}, /* {mqueue} */
	{"fifo", 51, 1, "fifo", "same_as"}, /* {fifo} */
	{"fanotify", 52, 1, "fanotify", "same_as"}, /* {fanotify} */
	{"locks", 55, 0, 0, 0}, /* [[text|uint]]? */
	{"owner", 3, 0, 0, 0}, /* [uint]? */
	{"pty", 56, 1, "pty", "same_as"}, /* {pty} */
	{"tty", 57, 0, "stdio", 0}, /* {tty}? */
	{"pipe", 58, 1, "pipe", "same_as"}, /* {pipe} */
	{"eventfd", 59, 1, "eventfd", "same_as"}, /* {eventfd} */
	{"epoll", 30, 1, "epoll", "same_as"}, /* [[uint]] */
	{"timerfd", 60, 1, "timerfd", "same_as"}, /* {timerfd} */
	{"signalfd", 61, 1, "signalfd", "same_as"}, /* {signalfd} */
	{"inotify", 62, 1, "inotify", "same_as"}, /* {inotify} */
	{"pidfd", 63, 1, "pidfd", "same_as"}, /* {pidfd} */
	{"socket", 64, 1, "socket", "same_as"}, /* {socket} */
};
static const struct ck_schema_key ck_schema_keys_deleted[] = {
	{"size", 1, 1, 0, 0}, /* uint */
	{"uid", 1, 1, 0, 0}, /* uint */
	{"gid", 1, 1, 0, 0}, /* uint */
	{"mode", 1, 1, 0, 0}, /* uint */
	{"atime_ns", 1, 1, 0, 0}, /* uint */
	{"mtime_ns", 1, 1, 0, 0}, /* uint */
	{"extents", 66, 1, 0, 0}, /* [{extent}] */
};
static const struct ck_schema_key ck_schema_keys_extent[] = {
	{"at", 1, 1, 0, 0}, /* uint */
	{"data", 17, 1, 0, 0}, /* [int] */
};
static const struct ck_schema_key ck_schema_keys_memfd[] = {
	{"seals", 1, 1, 0, 0}, /* uint */
	{"size", 1, 1, 0, 0}, /* uint */
	{"uid", 1, 1, 0, 0}, /* uint */
	{"gid", 1, 1, 0, 0}, /* uint */
	{"mode", 1, 1, 0, 0}, /* uint */
	{"atime_ns", 1, 1, 0, 0}, /* uint */
	{"mtime_ns", 1, 1, 0, 0}, /* uint */
	{"extents", 66, 1, 0, 0}, /* [{extent}] */
};
static const struct ck_schema_key ck_schema_keys_deleted_dir[] = {
	{"uid", 1, 1, 0, 0}, /* uint */
	{"gid", 1, 1, 0, 0}, /* uint */
	{"mode", 1, 1, 0, 0}, /* uint */
	{"atime_ns", 1, 1, 0, 0}, /* uint */
	{"mtime_ns", 1, 1, 0, 0}, /* uint */
};
static const struct ck_schema_key ck_schema_keys_symlink[] = {
	{"target", 0, 1, 0, 0}, /* text */
};
static const struct ck_schema_key ck_schema_keys_mqueue[] = {
	{"maxmsg", 1, 1, 0, 0}, /* uint */
	{"msgsize", 1, 1, 0, 0}, /* uint */
	{"uid", 1, 1, 0, 0}, /* uint */
	{"gid", 1, 1, 0, 0}, /* uint */
	{"deleted", 9, 0, 0, 0}, /* bool? */
	{"messages", 30, 0, 0, 0}, /* [[uint]]? */
	{"data", 17, 0, 0, 0}, /* [int]? */
};
static const struct ck_schema_key ck_schema_keys_fifo[] = {
	{"capacity", 1, 1, 0, 0}, /* uint */
	{"data", 17, 0, 0, 0}, /* [int]? */
};
static const struct ck_schema_key ck_schema_keys_fanotify[] = {
	{"flags", 1, 1, 0, 0}, /* uint */
	{"event_flags", 1, 1, 0, 0}, /* uint */
	{"marks", 68, 1, 0, 0}, /* [{fanotify_mark}] */
};
static const struct ck_schema_key ck_schema_keys_fanotify_mark[] = {
	{"on", 0, 1, 0, 0}, /* text */
	{"mflags", 1, 1, 0, 0}, /* uint */
	{"mask", 1, 1, 0, 0}, /* uint */
	{"ignored_mask", 1, 1, 0, 0}, /* uint */
	{"mnt_id", 1, 0, 0, 0}, /* uint? */
	{"sdev", 1, 0, 0, 0}, /* uint? */
	{"handle_type", 1, 0, 0, 0}, /* uint? */
	{"handle", 20, 0, 0, 0}, /* bytes? */
};
static const struct ck_schema_key ck_schema_keys_pty[] = {
	{"end", 0, 1, 0, 0}, /* text */
	{"index", 1, 1, 0, 0}, /* uint */
	{"hung_up", 9, 0, 0, 0}, /* bool? */
	{"locked", 9, 0, 0, 0}, /* bool? */
	{"packet", 9, 0, 0, 0}, /* bool? */
	{"data", 17, 0, 0, 0}, /* [int]? */
	{"input", 17, 0, 0, 0}, /* [int]? */
	{"lines", 3, 0, 0, 0}, /* [uint]? */
	{"tty", 57, 0, 0, 0}, /* {tty}? */
	{"owner", 3, 0, 0, 0}, /* [uint]? */
};
static const struct ck_schema_key ck_schema_keys_tty[] = {
	{"termios", 70, 1, 0, 0}, /* [uint|bytes] */
	{"winsize", 3, 1, 0, 0}, /* [uint] */
	{"sid", 1, 0, 0, 0}, /* uint? */
	{"fg", 1, 0, 0, 0}, /* uint? */
};
static const struct ck_schema_key ck_schema_keys_pipe[] = {
	{"id", 1, 1, 0, 0}, /* uint */
	{"end", 0, 1, 0, 0}, /* text */
	{"peer_outside", 9, 1, 0, 0}, /* bool */
	{"capacity", 1, 0, 0, 0}, /* uint? */
	{"data", 17, 0, 0, 0}, /* [int]? */
};
static const struct ck_schema_key ck_schema_keys_eventfd[] = {
	{"count", 1, 1, 0, 0}, /* uint */
	{"semaphore", 9, 1, 0, 0}, /* bool */
};
static const struct ck_schema_key ck_schema_keys_timerfd[] = {
	{"clock", 16, 1, 0, 0}, /* int */
	{"settime_flags", 1, 1, 0, 0}, /* uint */
	{"value_ns", 1, 1, 0, 0}, /* uint */
	{"interval_ns", 1, 1, 0, 0}, /* uint */
	{"ticks", 1, 1, 0, 0}, /* uint */
	{"deadline_ns", 1, 0, 0, 0}, /* uint? */
};
static const struct ck_schema_key ck_schema_keys_signalfd[] = {
	{"mask", 1, 1, 0, 0}, /* uint */
};
static const struct ck_schema_key ck_schema_keys_inotify[] = {
	{"watches", 73, 1, 0, 0}, /* [[uint|text]] */
	{"queued", 1, 1, 0, 0}, /* uint */
};
static const struct ck_schema_key ck_schema_keys_pidfd[] = {
	{"pid", 1, 1, 0, 0}, /* uint */
	{"relation", 0, 1, 0, 0}, /* text */
};
static const struct ck_schema_key ck_schema_keys_socket[] = {
	{"family", 1, 1, 0, 0}, /* uint */
	{"type", 1, 1, 0, 0}, /* uint */
	{"protocol", 1, 1, 0, 0}, /* uint */
	{"options", 76, 1, 0, 0}, /* [[uint|bytes]] */
	{"filter", 20, 0, 0, 0}, /* bytes? */
	{"filter_locked", 1, 0, 0, 0}, /* uint? */
	{"inet", 77, 0, 0, 0}, /* {inet}? */
	{"unix", 78, 0, 0, 0}, /* {unix}? */
	{"netlink", 79, 0, 0, 0}, /* {netlink}? */
	{"packet", 80, 0, 0, 0}, /* {packet}? */
};
static const struct ck_schema_key ck_schema_keys_netlink[] = {
	{"portid", 1, 1, 0, 0}, /* uint */
	{"groups", 3, 0, 0, 0}, /* [uint]? */
	{"dst_portid", 1, 0, 0, 0}, /* uint? */
	{"dst_groups", 1, 0, 0, 0}, /* uint? */
};
static const struct ck_schema_key ck_schema_keys_packet[] = {
	{"ifname", 0, 0, 0, 0}, /* text? */
	{"num", 1, 1, 0, 0}, /* uint */
	{"copy_thresh", 1, 0, 0, 0}, /* uint? */
	{"fanout", 1, 0, 0, 0}, /* uint? */
	{"rx_ring", 3, 0, 0, 0}, /* [uint]? */
	{"tx_ring", 3, 0, 0, 0}, /* [uint]? */
	{"memberships", 83, 0, 0, 0}, /* [[text|uint|bytes]]? */
};
static const struct ck_schema_key ck_schema_keys_inet[] = {
	{"local", 85, 1, 0, 0}, /* [bytes|uint] */
	{"peer", 87, 0, 0, 0}, /* [bytes|uint]? */
	{"tcp_state", 1, 0, 0, 0}, /* uint? */
	{"ended", 9, 0, 0, 0}, /* bool? */
	{"backlog", 1, 0, 0, 0}, /* uint? */
	{"recv_queue", 17, 0, 0, 0}, /* [int]? */
	{"unsent_queue", 17, 0, 0, 0}, /* [int]? */
	{"send_queue", 17, 0, 0, 0}, /* [int]? */
	{"send_unsent", 1, 0, 0, 0}, /* uint? */
	{"send_seq", 1, 0, 0, 0}, /* uint? */
	{"recv_seq", 1, 0, 0, 0}, /* uint? */
	{"repair", 3, 0, 0, 0}, /* [uint]? */
	{"datagrams", 90, 0, 0, 0}, /* [[bytes|int]]? */
	{"shutdown", 1, 0, 0, 0}, /* uint? */
};
static const struct ck_schema_key ck_schema_keys_unix[] = {
	{"ino", 1, 1, 0, 0}, /* uint */
	{"state", 1, 1, 0, 0}, /* uint */
	{"name", 20, 0, 0, 0}, /* bytes? */
	{"peer", 1, 0, 0, 0}, /* uint? */
	{"peer_name", 20, 0, 0, 0}, /* bytes? */
	{"shutdown", 1, 0, 0, 0}, /* uint? */
	{"sndbuf", 1, 1, 0, 0}, /* uint */
	{"rcvbuf", 1, 1, 0, 0}, /* uint */
	{"backlog", 1, 0, 0, 0}, /* uint? */
	{"pending", 3, 0, 0, 0}, /* [uint]? */
	{"pending_bytes", 3, 0, 0, 0}, /* [uint]? */
	{"msgs", 96, 0, 0, 0}, /* [uint|[uint|[{passed}]|bytes]]? */
	{"queue", 17, 0, 0, 0}, /* [int]? */
	{"file_mode", 1, 0, 0, 0}, /* uint? */
	{"file_uid", 1, 0, 0, 0}, /* uint? */
	{"file_gid", 1, 0, 0, 0}, /* uint? */
	{"file_gone", 9, 0, 0, 0}, /* bool? */
	{"reset", 9, 0, 0, 0}, /* bool? */
};
static const struct ck_schema_key ck_schema_keys_passed[] = {
	{"kind", 0, 1, 0, 0}, /* text */
	{"path", 0, 1, "file", 0}, /* text */
	{"flags", 1, 1, "file", 0}, /* uint */
	{"offset", 1, 1, "file", 0}, /* uint */
	{"id", 1, 1, "pipe", 0}, /* uint */
	{"end", 0, 1, "pipe", 0}, /* text */
	{"capacity", 1, 0, "pipe", 0}, /* uint? */
	{"data", 17, 0, "pipe", 0}, /* [int]? */
	{"ino", 1, 1, "socket", 0}, /* uint */
};
static const struct ck_schema_key ck_schema_keys_region[] = {
	{"start", 1, 1, 0, 0}, /* uint */
	{"end", 1, 1, 0, 0}, /* uint */
	{"prot", 1, 1, 0, 0}, /* uint */
	{"shared", 9, 1, 0, 0}, /* bool */
	{"kind", 0, 1, 0, 0}, /* text */
	{"name", 0, 1, 0, 0}, /* text */
	{"vmflags", 2, 0, 0, 0}, /* [text]? */
	{"huge_page", 1, 0, 0, 0}, /* uint? */
	{"file", 97, 0, 0, 0}, /* {region_file}? */
	{"guards", 30, 0, 0, 0}, /* [[uint]]? */
	{"shim_file", 3, 0, 0, 0}, /* [uint]? */
	{"open_deleted", 3, 0, 0, 0}, /* [uint]? */
	{"runs", 18, 1, 0, 0}, /* [[int]] */
	{"bytes", 1, 1, 0, 0}, /* uint */
	{"shm", 3, 0, 0, 0}, /* [uint]? */
	{"shm_object", 98, 0, 0, 0}, /* {shm_object}? */
};
static const struct ck_schema_key ck_schema_keys_region_file[] = {
	{"path", 0, 1, 0, 0}, /* text */
	{"offset", 1, 1, 0, 0}, /* uint */
	{"dev", 1, 1, 0, 0}, /* uint */
	{"ino", 1, 1, 0, 0}, /* uint */
	{"size", 1, 1, 0, 0}, /* uint */
	{"mtime_ns", 1, 1, 0, 0}, /* uint */
};
static const struct ck_schema_key ck_schema_keys_shm_object[] = {
	{"kind", 0, 1, 0, 0}, /* text */
	{"name", 0, 1, "memfd", 0}, /* text */
	{"path", 0, 1, "posix", 0}, /* text */
	{"key", 16, 1, "sysv", 0}, /* int */
	{"id", 16, 1, "sysv", 0}, /* int */
	{"mode", 1, 1, "sysv", 0}, /* uint */
	{"size", 1, 0, "sysv,memfd,posix,anon", 0}, /* uint? */
};
static const struct ck_schema_key ck_schema_keys_manifest[] = {
	{"format", 0, 1, 0, 0}, /* text */
	{"version", 1, 1, 0, 0}, /* uint */
	{"generation", 1, 1, 0, 0}, /* uint */
	{"created_ns", 1, 1, 0, 0}, /* uint */
	{"argv", 2, 1, 0, 0}, /* [text] */
	{"cwd", 0, 1, 0, 0}, /* text */
	{"root", 1, 1, 0, 0}, /* uint */
	{"processes", 100, 1, 0, 0}, /* [{process}] */
	{"shared_files", 101, 0, 0, 0}, /* [[[uint]]] since=9eadff3 */
	{"shm_owners", 30, 0, 0, 0}, /* [[uint]] since=f72c03a */
	{"compressed", 0, 0, 0, 0}, /* text? */
	{"files", 102, 0, 0, 0}, /* {files}? */
	{"contents", 104, 0, 0, 0}, /* [{content}]? */
	{"portable", 9, 0, 0, 0}, /* bool? */
};
static const struct ck_schema_key ck_schema_keys_content[] = {
	{"path", 0, 1, 0, 0}, /* text */
	{"dev", 1, 1, 0, 0}, /* uint */
	{"ino", 1, 1, 0, 0}, /* uint */
	{"size", 1, 1, 0, 0}, /* uint */
	{"mtime_ns", 1, 1, 0, 0}, /* uint */
	{"ctime_ns", 1, 1, 0, 0}, /* uint */
	{"sha256", 20, 1, 0, 0}, /* bytes */
};
static const struct ck_schema_key ck_schema_keys_files[] = {
	{"policy", 0, 1, 0, 0}, /* text */
	{"saved", 106, 1, 0, 0}, /* [{saved_file}] */
	{"stdio", 108, 1, 0, 0}, /* [{stdio_file}] */
	{"dirs", 110, 0, 0, 0}, /* [{snapshot_dir}]? */
};
static const struct ck_schema_key ck_schema_keys_snapshot_dir[] = {
	{"path", 0, 1, 0, 0}, /* text */
	{"list", 0, 1, 0, 0}, /* text */
	{"list_crc", 1, 1, 0, 0}, /* uint */
	{"entries", 1, 1, 0, 0}, /* uint */
	{"bytes", 1, 1, 0, 0}, /* uint */
	{"stored", 1, 1, 0, 0}, /* uint */
};
static const struct ck_schema_key ck_schema_keys_saved_file[] = {
	{"path", 0, 1, 0, 0}, /* text */
	{"dev", 1, 1, 0, 0}, /* uint */
	{"ino", 1, 1, 0, 0}, /* uint */
	{"size", 1, 1, 0, 0}, /* uint */
	{"mode", 1, 1, 0, 0}, /* uint */
	{"uid", 1, 1, 0, 0}, /* uint */
	{"gid", 1, 1, 0, 0}, /* uint */
	{"atime_ns", 1, 1, 0, 0}, /* uint */
	{"mtime_ns", 1, 1, 0, 0}, /* uint */
	{"how", 0, 1, 0, 0}, /* text */
	{"block", 1, 1, 0, 0}, /* uint */
	{"table", 0, 1, 0, 0}, /* text */
	{"table_crc", 1, 1, 0, 0}, /* uint */
	{"sources", 2, 1, 0, 0}, /* [text] */
	{"stored", 1, 1, 0, 0}, /* uint */
};
static const struct ck_schema_key ck_schema_keys_stdio_file[] = {
	{"fd", 1, 1, 0, 0}, /* uint */
	{"path", 0, 1, 0, 0}, /* text */
	{"dev", 1, 1, 0, 0}, /* uint */
	{"ino", 1, 1, 0, 0}, /* uint */
	{"offset", 1, 1, 0, 0}, /* uint */
	{"flags", 1, 1, 0, 0}, /* uint */
	{"same_as", 1, 0, 0, 0}, /* uint? */
};
static const struct ck_schema_key ck_schema_keys_process[] = {
	{"pid", 1, 1, 0, 0}, /* uint */
	{"image", 0, 1, 0, 0}, /* text */
	{"bytes", 1, 0, 0, 0}, /* uint since=f72c03a */
	{"header_crc", 1, 0, 0, 0}, /* uint since=f72c03a */
	{"pause_ns", 1, 1, 0, 0}, /* uint */
	{"ppid", 1, 0, 0, 0}, /* uint since=9eadff3 */
	{"pgid", 1, 0, 0, 0}, /* uint since=9eadff3 */
	{"sid", 1, 0, 0, 0}, /* uint since=9eadff3 */
	{"compressed_bytes", 1, 0, 0, 0}, /* uint? */
	{"chain", 1, 0, 0, 0}, /* uint since=f72c03a */
};

static const struct ck_schema_type ck_schema_types[] = {
	{CKS_TEXT, 0, 0}, /* 0 */
	{CKS_UINT, 0, 0}, /* 1 */
	{CKS_ARRAY, 0, 0}, /* 2 */
	{CKS_ARRAY, 1, 0}, /* 3 */
	{CKS_RECORD, 12, 0}, /* 4 */
	{CKS_RECORD, 13, 0}, /* 5 */
	{CKS_RECORD, 17, 0}, /* 6 */
	{CKS_ARRAY, 6, 0}, /* 7 */
	{CKS_RECORD, 15, 0}, /* 8 */
	{CKS_BOOL, 0, 0}, /* 9 */
	{CKS_UNION, 0, 2}, /* 10 */
	{CKS_ARRAY, 10, 0}, /* 11 */
	{CKS_ARRAY, 11, 0}, /* 12 */
	{CKS_RECORD, 3, 0}, /* 13 */
	{CKS_RECORD, 2, 0}, /* 14 */
	{CKS_ARRAY, 14, 0}, /* 15 */
	{CKS_INT, 0, 0}, /* 16 */
	{CKS_ARRAY, 16, 0}, /* 17 */
	{CKS_ARRAY, 17, 0}, /* 18 */
	{CKS_RECORD, 5, 0}, /* 19 */
	{CKS_BYTES, 0, 0}, /* 20 */
	{CKS_RECORD, 6, 0}, /* 21 */
	{CKS_RECORD, 9, 0}, /* 22 */
	{CKS_ARRAY, 22, 0}, /* 23 */
	{CKS_RECORD, 19, 0}, /* 24 */
	{CKS_RECORD, 21, 0}, /* 25 */
	{CKS_ARRAY, 25, 0}, /* 26 */
	{CKS_RECORD, 45, 0}, /* 27 */
	{CKS_ARRAY, 27, 0}, /* 28 */
	{CKS_RECORD, 7, 0}, /* 29 */
	{CKS_ARRAY, 3, 0}, /* 30 */
	{CKS_RECORD, 8, 0}, /* 31 */
	{CKS_RECORD, 4, 0}, /* 32 */
	{CKS_RECORD, 18, 0}, /* 33 */
	{CKS_NULL, 0, 0}, /* 34 */
	{CKS_UNION, 2, 2}, /* 35 */
	{CKS_RECORD, 11, 0}, /* 36 */
	{CKS_RECORD, 10, 0}, /* 37 */
	{CKS_UNION, 4, 2}, /* 38 */
	{CKS_UNION, 6, 2}, /* 39 */
	{CKS_RECORD, 14, 0}, /* 40 */
	{CKS_ARRAY, 40, 0}, /* 41 */
	{CKS_RECORD, 16, 0}, /* 42 */
	{CKS_ARRAY, 42, 0}, /* 43 */
	{CKS_RECORD, 20, 0}, /* 44 */
	{CKS_ARRAY, 44, 0}, /* 45 */
	{CKS_RECORD, 22, 0}, /* 46 */
	{CKS_RECORD, 24, 0}, /* 47 */
	{CKS_RECORD, 25, 0}, /* 48 */
	{CKS_RECORD, 26, 0}, /* 49 */
	{CKS_RECORD, 27, 0}, /* 50 */
	{CKS_RECORD, 28, 0}, /* 51 */
	{CKS_RECORD, 29, 0}, /* 52 */
	{CKS_UNION, 8, 2}, /* 53 */
	{CKS_ARRAY, 53, 0}, /* 54 */
	{CKS_ARRAY, 54, 0}, /* 55 */
	{CKS_RECORD, 31, 0}, /* 56 */
	{CKS_RECORD, 32, 0}, /* 57 */
	{CKS_RECORD, 33, 0}, /* 58 */
	{CKS_RECORD, 34, 0}, /* 59 */
	{CKS_RECORD, 35, 0}, /* 60 */
	{CKS_RECORD, 36, 0}, /* 61 */
	{CKS_RECORD, 37, 0}, /* 62 */
	{CKS_RECORD, 38, 0}, /* 63 */
	{CKS_RECORD, 39, 0}, /* 64 */
	{CKS_RECORD, 23, 0}, /* 65 */
	{CKS_ARRAY, 65, 0}, /* 66 */
	{CKS_RECORD, 30, 0}, /* 67 */
	{CKS_ARRAY, 67, 0}, /* 68 */
	{CKS_UNION, 10, 2}, /* 69 */
	{CKS_ARRAY, 69, 0}, /* 70 */
	{CKS_UNION, 12, 2}, /* 71 */
	{CKS_ARRAY, 71, 0}, /* 72 */
	{CKS_ARRAY, 72, 0}, /* 73 */
	{CKS_UNION, 14, 2}, /* 74 */
	{CKS_ARRAY, 74, 0}, /* 75 */
	{CKS_ARRAY, 75, 0}, /* 76 */
	{CKS_RECORD, 42, 0}, /* 77 */
	{CKS_RECORD, 43, 0}, /* 78 */
	{CKS_RECORD, 40, 0}, /* 79 */
	{CKS_RECORD, 41, 0}, /* 80 */
	{CKS_UNION, 16, 3}, /* 81 */
	{CKS_ARRAY, 81, 0}, /* 82 */
	{CKS_ARRAY, 82, 0}, /* 83 */
	{CKS_UNION, 19, 2}, /* 84 */
	{CKS_ARRAY, 84, 0}, /* 85 */
	{CKS_UNION, 21, 2}, /* 86 */
	{CKS_ARRAY, 86, 0}, /* 87 */
	{CKS_UNION, 23, 2}, /* 88 */
	{CKS_ARRAY, 88, 0}, /* 89 */
	{CKS_ARRAY, 89, 0}, /* 90 */
	{CKS_RECORD, 44, 0}, /* 91 */
	{CKS_ARRAY, 91, 0}, /* 92 */
	{CKS_UNION, 25, 3}, /* 93 */
	{CKS_ARRAY, 93, 0}, /* 94 */
	{CKS_UNION, 28, 2}, /* 95 */
	{CKS_ARRAY, 95, 0}, /* 96 */
	{CKS_RECORD, 46, 0}, /* 97 */
	{CKS_RECORD, 47, 0}, /* 98 */
	{CKS_RECORD, 54, 0}, /* 99 */
	{CKS_ARRAY, 99, 0}, /* 100 */
	{CKS_ARRAY, 30, 0}, /* 101 */
	{CKS_RECORD, 50, 0}, /* 102 */
	{CKS_RECORD, 49, 0}, /* 103 */
	{CKS_ARRAY, 103, 0}, /* 104 */
	{CKS_RECORD, 52, 0}, /* 105 */
	{CKS_ARRAY, 105, 0}, /* 106 */
	{CKS_RECORD, 53, 0}, /* 107 */
	{CKS_ARRAY, 107, 0}, /* 108 */
	{CKS_RECORD, 51, 0}, /* 109 */
	{CKS_ARRAY, 109, 0}, /* 110 */
};

static const unsigned short ck_schema_alts[] = {1, 9, 3, 34, 1, 34, 1, 34, 0, 1, 1, 20, 1, 0, 1, 20, 0, 1, 20, 20, 1, 20, 1, 20, 16, 1, 92, 20, 1, 94};

static const struct ck_schema_record ck_schema_records[] = {
	{"header", ck_schema_keys_header, sizeof ck_schema_keys_header / sizeof ck_schema_keys_header[0]},
	{"meta", ck_schema_keys_meta, sizeof ck_schema_keys_meta / sizeof ck_schema_keys_meta[0]},
	{"child", ck_schema_keys_child, sizeof ck_schema_keys_child / sizeof ck_schema_keys_child[0]},
	{"creds", ck_schema_keys_creds, sizeof ck_schema_keys_creds / sizeof ck_schema_keys_creds[0]},
	{"caps", ck_schema_keys_caps, sizeof ck_schema_keys_caps / sizeof ck_schema_keys_caps[0]},
	{"mm", ck_schema_keys_mm, sizeof ck_schema_keys_mm / sizeof ck_schema_keys_mm[0]},
	{"vdso", ck_schema_keys_vdso, sizeof ck_schema_keys_vdso / sizeof ck_schema_keys_vdso[0]},
	{"stats", ck_schema_keys_stats, sizeof ck_schema_keys_stats / sizeof ck_schema_keys_stats[0]},
	{"incremental", ck_schema_keys_incremental, sizeof ck_schema_keys_incremental / sizeof ck_schema_keys_incremental[0]},
	{"thread", ck_schema_keys_thread, sizeof ck_schema_keys_thread / sizeof ck_schema_keys_thread[0]},
	{"thread_creds", ck_schema_keys_thread_creds, sizeof ck_schema_keys_thread_creds / sizeof ck_schema_keys_thread_creds[0]},
	{"thread_attrs", ck_schema_keys_thread_attrs, sizeof ck_schema_keys_thread_attrs / sizeof ck_schema_keys_thread_attrs[0]},
	{"proc_attrs", ck_schema_keys_proc_attrs, sizeof ck_schema_keys_proc_attrs / sizeof ck_schema_keys_proc_attrs[0]},
	{"seccomp", ck_schema_keys_seccomp, sizeof ck_schema_keys_seccomp / sizeof ck_schema_keys_seccomp[0]},
	{"seccomp_filter", ck_schema_keys_seccomp_filter, sizeof ck_schema_keys_seccomp_filter / sizeof ck_schema_keys_seccomp_filter[0]},
	{"sysv", ck_schema_keys_sysv, sizeof ck_schema_keys_sysv / sizeof ck_schema_keys_sysv[0]},
	{"sysv_object", ck_schema_keys_sysv_object, sizeof ck_schema_keys_sysv_object / sizeof ck_schema_keys_sysv_object[0]},
	{"aio", ck_schema_keys_aio, sizeof ck_schema_keys_aio / sizeof ck_schema_keys_aio[0]},
	{"regs", ck_schema_keys_regs, sizeof ck_schema_keys_regs / sizeof ck_schema_keys_regs[0]},
	{"signals", ck_schema_keys_signals, sizeof ck_schema_keys_signals / sizeof ck_schema_keys_signals[0]},
	{"timer", ck_schema_keys_timer, sizeof ck_schema_keys_timer / sizeof ck_schema_keys_timer[0]},
	{"file", ck_schema_keys_file, sizeof ck_schema_keys_file / sizeof ck_schema_keys_file[0]},
	{"deleted", ck_schema_keys_deleted, sizeof ck_schema_keys_deleted / sizeof ck_schema_keys_deleted[0]},
	{"extent", ck_schema_keys_extent, sizeof ck_schema_keys_extent / sizeof ck_schema_keys_extent[0]},
	{"memfd", ck_schema_keys_memfd, sizeof ck_schema_keys_memfd / sizeof ck_schema_keys_memfd[0]},
	{"deleted_dir", ck_schema_keys_deleted_dir, sizeof ck_schema_keys_deleted_dir / sizeof ck_schema_keys_deleted_dir[0]},
	{"symlink", ck_schema_keys_symlink, sizeof ck_schema_keys_symlink / sizeof ck_schema_keys_symlink[0]},
	{"mqueue", ck_schema_keys_mqueue, sizeof ck_schema_keys_mqueue / sizeof ck_schema_keys_mqueue[0]},
	{"fifo", ck_schema_keys_fifo, sizeof ck_schema_keys_fifo / sizeof ck_schema_keys_fifo[0]},
	{"fanotify", ck_schema_keys_fanotify, sizeof ck_schema_keys_fanotify / sizeof ck_schema_keys_fanotify[0]},
	{"fanotify_mark", ck_schema_keys_fanotify_mark, sizeof ck_schema_keys_fanotify_mark / sizeof ck_schema_keys_fanotify_mark[0]},
	{"pty", ck_schema_keys_pty, sizeof ck_schema_keys_pty / sizeof ck_schema_keys_pty[0]},
	{"tty", ck_schema_keys_tty, sizeof ck_schema_keys_tty / sizeof ck_schema_keys_tty[0]},
	{"pipe", ck_schema_keys_pipe, sizeof ck_schema_keys_pipe / sizeof ck_schema_keys_pipe[0]},
	{"eventfd", ck_schema_keys_eventfd, sizeof ck_schema_keys_eventfd / sizeof ck_schema_keys_eventfd[0]},
	{"timerfd", ck_schema_keys_timerfd, sizeof ck_schema_keys_timerfd / sizeof ck_schema_keys_timerfd[0]},
	{"signalfd", ck_schema_keys_signalfd, sizeof ck_schema_keys_signalfd / sizeof ck_schema_keys_signalfd[0]},
	{"inotify", ck_schema_keys_inotify, sizeof ck_schema_keys_inotify / sizeof ck_schema_keys_inotify[0]},
	{"pidfd", ck_schema_keys_pidfd, sizeof ck_schema_keys_pidfd / sizeof ck_schema_keys_pidfd[0]},
	{"socket", ck_schema_keys_socket, sizeof ck_schema_keys_socket / sizeof ck_schema_keys_socket[0]},
	{"netlink", ck_schema_keys_netlink, sizeof ck_schema_keys_netlink / sizeof ck_schema_keys_netlink[0]},
	{"packet", ck_schema_keys_packet, sizeof ck_schema_keys_packet / sizeof ck_schema_keys_packet[0]},
	{"inet", ck_schema_keys_inet, sizeof ck_schema_keys_inet / sizeof ck_schema_keys_inet[0]},
	{"unix", ck_schema_keys_unix, sizeof ck_schema_keys_unix / sizeof ck_schema_keys_unix[0]},
	{"passed", ck_schema_keys_passed, sizeof ck_schema_keys_passed / sizeof ck_schema_keys_passed[0]},
	{"region", ck_schema_keys_region, sizeof ck_schema_keys_region / sizeof ck_schema_keys_region[0]},
	{"region_file", ck_schema_keys_region_file, sizeof ck_schema_keys_region_file / sizeof ck_schema_keys_region_file[0]},
	{"shm_object", ck_schema_keys_shm_object, sizeof ck_schema_keys_shm_object / sizeof ck_schema_keys_shm_object[0]},
	{"manifest", ck_schema_keys_manifest, sizeof ck_schema_keys_manifest / sizeof ck_schema_keys_manifest[0]},
	{"content", ck_schema_keys_content, sizeof ck_schema_keys_content / sizeof ck_schema_keys_content[0]},
	{"files", ck_schema_keys_files, sizeof ck_schema_keys_files / sizeof ck_schema_keys_files[0]},
	{"snapshot_dir", ck_schema_keys_snapshot_dir, sizeof ck_schema_keys_snapshot_dir / sizeof ck_schema_keys_snapshot_dir[0]},
	{"saved_file", ck_schema_keys_saved_file, sizeof ck_schema_keys_saved_file / sizeof ck_schema_keys_saved_file[0]},
	{"stdio_file", ck_schema_keys_stdio_file, sizeof ck_schema_keys_stdio_file / sizeof ck_schema_keys_stdio_file[0]},
	{"process", ck_schema_keys_process, sizeof ck_schema_keys_process / sizeof ck_schema_keys_process[0]},
};
#endif

#endif
