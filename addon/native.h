/* The addon's areas (one file each) and what they share. */
#ifndef CK_NATIVE_H
#define CK_NATIVE_H

#include <node_api.h>
#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>

#include "crc32c.h" /* preload/: the shim's CRC-32C */
#include "wire.h"   /* preload/: what the shim and the addon both know */

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

#ifndef SYS_kcmp
#define SYS_kcmp 312
#endif
#define CK_KCMP_FILE 0
#define CK_KCMP_VM 1
#define CK_KCMP_FILES 2

#define CK_NSIG 64          /* highest signal number on x86-64 Linux */
#define CK_MAX_FDS 4096     /* sanity limit on opts.fds */

#define NAPI_CALL(env, call)                          \
	do {                                          \
		if ((call) != napi_ok) {              \
			throw_napi((env), #call);     \
			goto fail;                    \
		}                                     \
	} while (0)

/* helpers.c */
const char *errno_name(int err);
void throw_coded(napi_env env, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void throw_type(napi_env env, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void throw_napi(napi_env env, const char *what);
bool get_opt(napi_env env, napi_value obj, const char *name, napi_value *out, bool *present);
char *dup_string(napi_env env, napi_value v, const char *what);
void free_strv(char **v);
char **dup_strv(napi_env env, napi_value arr, const char *what);
bool get_int(napi_env env, napi_value v, const char *what, int64_t lo, int64_t hi, int64_t *out);
bool get_fd_arg(napi_env env, napi_callback_info info, const char *what, int *fd);
bool set_int_prop(napi_env env, napi_value obj, const char *name, int64_t v);

/* reaper.c */
void reaper_note_spawn(void);
napi_value js_on_child_exit(napi_env env, napi_callback_info info);

/* spawn.c */
napi_value js_spawn(napi_env env, napi_callback_info info);
napi_value js_set_child_subreaper(napi_env env, napi_callback_info info);

/* sigwatch.c */
napi_value js_watch_signal(napi_env env, napi_callback_info info);
napi_value js_unwatch_signal(napi_env env, napi_callback_info info);

/* crc.c */
napi_value js_crc32c(napi_env env, napi_callback_info info);
napi_value js_crc32c_file(napi_env env, napi_callback_info info);
napi_value js_crc32c_file_ranges(napi_env env, napi_callback_info info);

/* unix.c */
napi_value js_unix_listen(napi_env env, napi_callback_info info);
napi_value js_unix_connect(napi_env env, napi_callback_info info);
napi_value js_send_with_fd(napi_env env, napi_callback_info info);
napi_value js_unix_peers(napi_env env, napi_callback_info info);
napi_value js_peer_cred(napi_env env, napi_callback_info info);
napi_value js_peer_alive(napi_env env, napi_callback_info info);
napi_value js_socket_pair(napi_env env, napi_callback_info info);

/* files.c */
napi_value js_kcmp_file(napi_env env, napi_callback_info info);
napi_value js_dup_process_fd(napi_env env, napi_callback_info info);
napi_value js_try_lock_exclusive(napi_env env, napi_callback_info info);

/* filesnap.c */
napi_value js_file_blocks(napi_env env, napi_callback_info info);
napi_value js_block_hash(napi_env env, napi_callback_info info);
napi_value js_punch_hole(napi_env env, napi_callback_info info);
napi_value js_seek(napi_env env, napi_callback_info info);
napi_value js_futimes_ns(napi_env env, napi_callback_info info);
napi_value js_lutimes_ns(napi_env env, napi_callback_info info);

/* tcp.c */
napi_value js_tcp_send_queue(napi_env env, napi_callback_info info);

/* procs.c */
napi_value js_ask_to_join(napi_env env, napi_callback_info info);
napi_value js_watch_exit(napi_env env, napi_callback_info info);
napi_value js_unwatch_exit(napi_env env, napi_callback_info info);
napi_value js_signal_watched(napi_env env, napi_callback_info info);

#endif
