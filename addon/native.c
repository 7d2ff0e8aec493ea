/*
 * ckrun_native: what Node cannot do by itself.
 *
 *   spawn(opts)              clone3 (optionally with set_tid / new PID+mount
 *                            namespace with its own /proc) + execve, errors
 *                            reported through a close-on-exec pipe
 *   setChildSubreaper()      prctl(PR_SET_CHILD_SUBREAPER)
 *   onChildExit(cb)          a reaper thread: wait4(-1, __WALL) delivered to
 *                            JS through an unref'd threadsafe function
 *   watchSignal(sig, cb)     a libuv signal watcher for any signal number
 *   unwatchSignal(id)        (Node's process.on knows no real-time signals)
 *   crc32c(buf, crc?)        CRC-32C of a Uint8Array / ArrayBuffer
 *   crc32cFile(path, off, n) CRC-32C of a byte range of a file (mapped, not copied)
 *   crc32cFileRanges(path, r) CRC-32C of many ranges of a file (r: Float64Array of offset, length)
 *   unixListen(name)         listening socket on an abstract name
 *   unixConnect(name)        connected socket to an abstract name
 *                            (Node 20's net pads abstract names to 108
 *                            bytes; the shim uses the exact length)
 *   kcmpFile(p1, fd1, p2, fd2) kcmp(KCMP_FILE): do two descriptors of two
 *                            processes share one open file description?
 *   dupProcessFd(pid, fd)    process pid's description at fd, duplicated into ckrun
 *                            (pidfd_getfd: no open, no lease broken)
 *   tcpSendQueue(fd)         a TCP connection's whole send queue, read in
 *                            repair mode (for a process without CAP_NET_ADMIN)
 *   unixPeers(name)          inodes of the client ends of every connection
 *                            accepted on the abstract name (sock_diag)
 *   peerCred(fd)             SO_PEERCRED of a Unix socket: {pid, uid, gid}
 *   peerAlive(fd)            whether that peer process still runs (SO_PEERPIDFD)
 *   watchExit(pid, cb)       cb(code, signal) when a process (any parent's)
 *   unwatchExit(id)          has exited, through its pidfd; signalWatched(id,
 *   signalWatched(id, sig)   sig) signals it through that pidfd
 *   fileBlocks(fd, size, bs, prev, out, base) a written file's block table,
 *                            its changed blocks appended to out (filesnap.c)
 *   blockHash(buf)           the hash a block table holds for these bytes
 *   punchHole(fd, off, len)  fallocate(PUNCH_HOLE | KEEP_SIZE)
 *   seek(fd, off)            lseek(SEEK_SET)
 *   futimesNs(fd, a, m)      futimens to the nanosecond
 *   lutimesNs(path, a, m)    a symbolic link's own times, to the nanosecond
 *
 * Plain N-API (node_api.h) plus libuv for the signal and exit watchers.
 * One file per area (native.h lists them); this one is the module's table.
 */
#define _GNU_SOURCE
#include "native.h"

NAPI_MODULE_INIT()
{
	napi_property_descriptor props[] = {
		{ "spawn", NULL, js_spawn, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "setChildSubreaper", NULL, js_set_child_subreaper, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "onChildExit", NULL, js_on_child_exit, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "watchSignal", NULL, js_watch_signal, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "unwatchSignal", NULL, js_unwatch_signal, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "crc32c", NULL, js_crc32c, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "crc32cFile", NULL, js_crc32c_file, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "crc32cFileRanges", NULL, js_crc32c_file_ranges, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "unixListen", NULL, js_unix_listen, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "unixConnect", NULL, js_unix_connect, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "kcmpFile", NULL, js_kcmp_file, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "dupProcessFd", NULL, js_dup_process_fd, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "tcpSendQueue", NULL, js_tcp_send_queue, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "unixPeers", NULL, js_unix_peers, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "askToJoin", NULL, js_ask_to_join, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "tryLockExclusive", NULL, js_try_lock_exclusive, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "sendWithFd", NULL, js_send_with_fd, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "peerCred", NULL, js_peer_cred, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "peerAlive", NULL, js_peer_alive, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "watchExit", NULL, js_watch_exit, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "unwatchExit", NULL, js_unwatch_exit, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "signalWatched", NULL, js_signal_watched, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "fileBlocks", NULL, js_file_blocks, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "blockHash", NULL, js_block_hash, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "punchHole", NULL, js_punch_hole, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "seek", NULL, js_seek, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "futimesNs", NULL, js_futimes_ns, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "lutimesNs", NULL, js_lutimes_ns, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "socketPair", NULL, js_socket_pair, NULL, NULL, NULL, napi_enumerable, NULL },
	};
	if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok)
		return NULL;
	return exports;
}
