/**
 * A setting with a default that an environment variable may override, for
 * sweeps: `BENCH_SKIPQ_CONCURRENCY=200 npm run bench -- --only W3`. Children
 * inherit the environment, and the report prints the values in force.
 */
export function tuned(name: string, fallback: number): number {
  const raw = process.env[`BENCH_${name}`];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value)) throw new Error(`BENCH_${name}=${raw} is not a number`);
  return value;
}

/** Like {@link tuned}, for on/off settings ("0"/"false" is off). */
export function tunedFlag(name: string, fallback: boolean): boolean {
  const raw = process.env[`BENCH_${name}`];
  if (raw === undefined || raw === '') return fallback;
  return !['0', 'false', 'no', 'off'].includes(raw.toLowerCase());
}
