/* What the shim and ckrun's addon both know about the signals between them. */
#ifndef CK_WIRE_H
#define CK_WIRE_H

/* Upper half of the value of ckrun's join request: the internal signal,
 * queued (SI_QUEUE) to a process of the session that has no connection
 * yet (forked since the last checkpoint). */
#define CK_JOIN_MAGIC 0x636aUL
/* Lower half, a flag: ckrun compared the process with its parent (kcmp)
 * and found that it shares neither memory nor descriptor table with it. A
 * process that changed its user ID may not kcmp its root parent itself. */
#define CK_JOIN_SEPARATE 0x1UL

#endif
