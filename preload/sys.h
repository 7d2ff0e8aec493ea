/* Raw Linux x86-64 system calls.
 *
 * Everything that runs inside the checkpoint signal handler or during
 * restore goes through these: they never touch errno (TLS may not exist
 * during restore) and never call into libc. They return -errno on failure. */
#ifndef CK_SYS_H
#define CK_SYS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>

#define CK_INLINE static inline __attribute__((always_inline))

CK_INLINE long ck_syscall6(long n, long a, long b, long c, long d, long e, long f)
{
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

#define CK_SYS6(n, a, b, c, d, e, f) \
	ck_syscall6((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))
#define CK_SYS5(n, a, b, c, d, e) CK_SYS6(n, a, b, c, d, e, 0)
#define CK_SYS4(n, a, b, c, d) CK_SYS6(n, a, b, c, d, 0, 0)
#define CK_SYS3(n, a, b, c) CK_SYS6(n, a, b, c, 0, 0, 0)
#define CK_SYS2(n, a, b) CK_SYS6(n, a, b, 0, 0, 0, 0)
#define CK_SYS1(n, a) CK_SYS6(n, a, 0, 0, 0, 0, 0)
#define CK_SYS0(n) CK_SYS6(n, 0, 0, 0, 0, 0, 0)

CK_INLINE long ck_read(int fd, void *buf, size_t n) { return CK_SYS3(SYS_read, fd, buf, n); }
CK_INLINE long ck_write(int fd, const void *buf, size_t n) { return CK_SYS3(SYS_write, fd, buf, n); }
CK_INLINE long ck_pread(int fd, void *buf, size_t n, uint64_t off) { return CK_SYS4(SYS_pread64, fd, buf, n, off); }
CK_INLINE long ck_pwrite(int fd, const void *buf, size_t n, uint64_t off) { return CK_SYS4(SYS_pwrite64, fd, buf, n, off); }
CK_INLINE long ck_openat(int dirfd, const char *path, int flags, int mode) { return CK_SYS4(SYS_openat, dirfd, path, flags, mode); }
CK_INLINE long ck_close(int fd) { return CK_SYS1(SYS_close, fd); }
CK_INLINE long ck_lseek(int fd, int64_t off, int whence) { return CK_SYS3(SYS_lseek, fd, off, whence); }
CK_INLINE long ck_fsync(int fd) { return CK_SYS1(SYS_fsync, fd); }
CK_INLINE long ck_fcntl(int fd, int cmd, long arg) { return CK_SYS3(SYS_fcntl, fd, cmd, arg); }
CK_INLINE long ck_dup3(int from, int to, int flags) { return CK_SYS3(SYS_dup3, from, to, flags); }
CK_INLINE long ck_getdents64(int fd, void *buf, size_t n) { return CK_SYS3(SYS_getdents64, fd, buf, n); }

/* One entry of what getdents64 fills a buffer with. */
struct ck_dirent64 {
	uint64_t ino;
	int64_t off;
	unsigned short reclen;
	unsigned char type;
	char name[];
};
CK_INLINE long ck_readlinkat(int dirfd, const char *path, char *buf, size_t n) { return CK_SYS4(SYS_readlinkat, dirfd, path, buf, n); }
CK_INLINE long ck_renameat(int odir, const char *o, int ndir, const char *n) { return CK_SYS4(SYS_renameat, odir, o, ndir, n); }
CK_INLINE long ck_unlinkat(int dirfd, const char *path, int flags) { return CK_SYS3(SYS_unlinkat, dirfd, path, flags); }
CK_INLINE long ck_fstat(int fd, void *st) { return CK_SYS2(SYS_fstat, fd, st); }
CK_INLINE long ck_ftruncate(int fd, int64_t len) { return CK_SYS2(SYS_ftruncate, fd, len); }
CK_INLINE long ck_mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off) { return CK_SYS6(SYS_mmap, addr, len, prot, flags, fd, off); }
CK_INLINE long ck_munmap(void *addr, size_t len) { return CK_SYS2(SYS_munmap, addr, len); }
CK_INLINE long ck_mprotect(void *addr, size_t len, int prot) { return CK_SYS3(SYS_mprotect, addr, len, prot); }
CK_INLINE long ck_mremap(void *old, size_t olen, size_t nlen, int flags, void *naddr) { return CK_SYS5(SYS_mremap, old, olen, nlen, flags, naddr); }
/* procfs.c: the PID /proc/self names, for a process whose own seccomp
 * filter makes getpid() fail (zdtm's filters answer it with an errno) */
__attribute__((visibility("hidden"))) long ck_pid_from_proc(void);
CK_INLINE long ck_getpid(void)
{
	long pid = CK_SYS0(SYS_getpid);
	return pid > 0 ? pid : ck_pid_from_proc();
}
CK_INLINE long ck_gettid(void) { return CK_SYS0(SYS_gettid); }
CK_INLINE long ck_tgkill(int pid, int tid, int sig) { return CK_SYS3(SYS_tgkill, pid, tid, sig); }
CK_INLINE long ck_kill(int pid, int sig) { return CK_SYS2(SYS_kill, pid, sig); }
CK_INLINE long ck_futex(volatile int *uaddr, int op, int val, const void *ts) { return CK_SYS6(SYS_futex, uaddr, op, val, ts, 0, 0); }
CK_INLINE long ck_clock_gettime(int clk, void *ts) { return CK_SYS2(SYS_clock_gettime, clk, ts); }
CK_INLINE long ck_rt_sigaction(int sig, const void *act, void *old) { return CK_SYS4(SYS_rt_sigaction, sig, act, old, 8); }
CK_INLINE long ck_rt_sigprocmask(int how, const void *set, void *old) { return CK_SYS4(SYS_rt_sigprocmask, how, set, old, 8); }
CK_INLINE long ck_prctl(int op, long a, long b, long c, long d) { return CK_SYS5(SYS_prctl, op, a, b, c, d); }
CK_INLINE long ck_arch_prctl(int code, unsigned long addr) { return CK_SYS2(SYS_arch_prctl, code, addr); }
CK_INLINE long ck_exit_group(int code) { return CK_SYS1(SYS_exit_group, code); }
CK_INLINE long ck_sendto(int fd, const void *buf, size_t n, int flags) { return CK_SYS6(SYS_sendto, fd, buf, n, flags, 0, 0); }
CK_INLINE long ck_recvfrom(int fd, void *buf, size_t n, int flags) { return CK_SYS6(SYS_recvfrom, fd, buf, n, flags, 0, 0); }
CK_INLINE long ck_recvfrom_addr(int fd, void *buf, size_t n, int flags, void *addr, unsigned *alen) { return CK_SYS6(SYS_recvfrom, fd, buf, n, flags, addr, alen); }
CK_INLINE long ck_getsockname(int fd, void *addr, unsigned *alen) { return CK_SYS3(SYS_getsockname, fd, addr, alen); }
CK_INLINE long ck_getpeername(int fd, void *addr, unsigned *alen) { return CK_SYS3(SYS_getpeername, fd, addr, alen); }
CK_INLINE long ck_getsockopt(int fd, int level, int name, void *val, unsigned *len) { return CK_SYS5(SYS_getsockopt, fd, level, name, val, len); }
CK_INLINE long ck_setsockopt(int fd, int level, int name, const void *val, unsigned len) { return CK_SYS5(SYS_setsockopt, fd, level, name, val, len); }
CK_INLINE long ck_ioctl(int fd, unsigned long req, void *arg) { return CK_SYS3(SYS_ioctl, fd, req, arg); }

/* Kernel's struct sigaction for rt_sigaction (not glibc's). */
struct ck_ksigaction {
	unsigned long handler;
	unsigned long flags;
	unsigned long restorer;
	uint64_t mask;
};

struct ck_timespec {
	long sec;
	long nsec;
};

/* Kernel's struct stat on x86-64. */
struct ck_stat {
	uint64_t dev;
	uint64_t ino;
	uint64_t nlink;
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
	uint32_t pad0;
	uint64_t rdev;
	int64_t size;
	int64_t blksize;
	int64_t blocks;
	uint64_t atime, atime_ns;
	uint64_t mtime, mtime_ns;
	uint64_t ctime, ctime_ns;
	int64_t unused[3];
};

#define CK_PAGE 4096UL
#define CK_PAGE_DOWN(x) ((uint64_t)(x) & ~(CK_PAGE - 1))
#define CK_PAGE_UP(x) (((uint64_t)(x) + CK_PAGE - 1) & ~(CK_PAGE - 1))

#endif
