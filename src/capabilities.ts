// Linux capabilities by name, for messages (src/trust.ts) and `ckrun
// inspect`: a capability set is a bit mask, bit n capability n.

const CAP_NAMES = [
  'CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP',
  'LINUX_IMMUTABLE', 'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER',
  'SYS_MODULE', 'SYS_RAWIO', 'SYS_CHROOT', 'SYS_PTRACE', 'SYS_PACCT', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_NICE',
  'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'MKNOD', 'LEASE', 'AUDIT_WRITE', 'AUDIT_CONTROL', 'SETFCAP',
  'MAC_OVERRIDE', 'MAC_ADMIN', 'SYSLOG', 'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ', 'PERFMON', 'BPF',
  'CHECKPOINT_RESTORE',
];

function capName(b: number): string {
  return b < CAP_NAMES.length ? `CAP_${CAP_NAMES[b]}` : `capability ${b}`;
}

/**
 * "CAP_CHOWN, CAP_NET_BIND_SERVICE" for a capability set ("none" when
 * empty; "every capability but CAP_SYS_RESOURCE" when it holds most).
 */
export function capabilityNames(set: bigint): string {
  const has = (b: number): boolean => ((set >> BigInt(b)) & 1n) === 1n;
  const names: string[] = [];
  for (let b = 0; b < 64; b++) if (has(b)) names.push(capName(b));
  const lacking = CAP_NAMES.map((_, b) => b).filter((b) => !has(b));
  if (names.length > CAP_NAMES.length / 2) {
    const unknown = names.filter((n) => n.startsWith('capability'));
    return `every capability${lacking.length ? ` but ${lacking.map(capName).join(', ')}` : ''}${unknown.length ? ` (and ${unknown.join(', ')})` : ''}`;
  }
  return names.length ? names.join(', ') : 'none';
}
