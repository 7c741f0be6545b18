import { sleep } from './clock.js';
import { machineCpuMs } from './procfs.js';

/**
 * Waits (up to `maxWaitMs`) until the machine is mostly idle before a round
 * starts: on 2 cores, anything else running (a test suite, another bench)
 * would be measured as the system's slowness. Returns the busy % last seen.
 */
export async function waitForQuiet(options: { maxBusyPct?: number; maxWaitMs?: number; log?: (m: string) => void } = {}): Promise<number> {
  const maxBusy = options.maxBusyPct ?? 20;
  const until = Date.now() + (options.maxWaitMs ?? 45_000);
  let warned = false;
  for (;;) {
    const a = machineCpuMs();
    await sleep(500);
    const b = machineCpuMs();
    const busy = (100 * (b.busy - a.busy)) / Math.max(1, b.total - a.total);
    if (busy <= maxBusy || Date.now() > until) {
      if (busy > maxBusy) options.log?.(`  machine still ${busy.toFixed(0)}% busy with other work; measuring anyway`);
      return busy;
    }
    if (!warned) options.log?.(`  machine ${busy.toFixed(0)}% busy with other work; waiting for it to settle`);
    warned = true;
  }
}
