/* The shim's state of this process that every part of it reads: the
 * session it belongs to, the threads a stop captured, and whether some
 * memory is marked in a way a forked writer would not see. Defined here,
 * below everything that reads or fills it (docs/design.md, "Layers"). */
#include "ckrun.h"

#define CK_DEFAULT_SIGNAL 63

CK_HIDDEN struct ck_session ck_session = {.ctl_fd = -1, .sig = CK_DEFAULT_SIGNAL};

/* Filled by the stop (checkpoint.c), the leader first. */
CK_HIDDEN struct ck_thread ck_threads[CK_MAX_THREADS];
CK_HIDDEN volatile int ck_nthreads;

/* Set by the madvise wrapper: some memory is MADV_DONTFORK or
 * MADV_WIPEONFORK, which a forked writer would not see as it is (the
 * mappings are then read with their marks while the program is stopped,
 * see ck_memory_save_stopped). */
CK_HIDDEN volatile int ck_fork_flags_used;
