// Whether a restart can make a family's sessions again (docs/design.md,
// "Restoring a tree"): a process whose session is not its parent's was
// forked before its parent's setsid, and so was every ancestor up to the
// one in (or leading) that session; the restore forks each of them into
// that session before its own setsid. Two trees Linux allows cannot be made
// so (both only through a child subreaper of the program): an ancestor in
// between that neither leads its own session nor is in that one, and one
// process that two descendants need born in two different sessions. They
// are refused at checkpoint time, naming the processes.

/** A process's IDs as the checkpoint read them (its PID namespace's). */
export interface TreeIds {
  pid: number;
  ppid: number;
  sid: number;
}

/** The reason the restart could not make these sessions again, or undefined. */
export function unbuildableSessions(procs: TreeIds[]): string | undefined {
  const byPid = new Map(procs.map((p) => [p.pid, p] as const));
  const born = new Map<number, number>();
  for (const c of procs) {
    const s = c.sid;
    if (s === c.pid) continue;
    for (let q = byPid.get(c.ppid); q && q.pid !== s && q.sid !== s; q = byPid.get(q.ppid)) {
      if (q.sid !== q.pid)
        return `process ${c.pid} is in session ${s}, but its ancestor ${q.pid} is in session ${q.sid}, which it does not lead (it was re-parented to a child subreaper): ckrun cannot make this tree again`;
      const b = born.get(q.pid);
      if (b !== undefined && b !== s)
        return `process ${q.pid} would have to be forked in session ${b} for one of its descendants and in session ${s} for another (re-parented to a child subreaper): ckrun cannot make this tree again`;
      born.set(q.pid, s);
    }
  }
  return undefined;
}
