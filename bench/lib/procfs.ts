import { readFileSync } from 'node:fs';

/**
 * Peak resident memory (VmHWM) of a process in MiB, read from /proc. VmHWM is
 * the kernel's own high-water mark, so no sampling can miss a short peak.
 */
export function peakRssMiB(pid: number | 'self' = 'self'): number | null {
  try {
    const match = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : null;
  } catch {
    return null;
  }
}
