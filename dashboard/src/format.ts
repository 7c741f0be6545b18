/** "12 s", "4 min", "3 h", "2 d". */
export function duration(ms: number): string {
  const s = Math.round(Math.abs(ms) / 1000);
  if (s < 60) return `${s} s`;
  const min = Math.round(s / 60);
  if (min < 60) return `${min} min`;
  const h = Math.round(min / 60);
  if (h < 48) return `${h} h`;
  return `${Math.round(h / 24)} d`;
}

/** "12 s ago" or "in 4 min", relative to `now`. */
export function relative(date: Date, now = Date.now()): string {
  const delta = date.getTime() - now;
  if (Math.abs(delta) < 1000) return 'now';
  return delta < 0 ? `${duration(delta)} ago` : `in ${duration(delta)}`;
}

/** The date and time in the reader's locale, to the second. */
export function absolute(date: Date): string {
  return date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

/** Counts with thousands separators. */
export const count = (n: number): string => n.toLocaleString();

/** Text shortened to `max` characters, with an ellipsis. */
export function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** "1 s", "250 ms", "1.5 min": a rate-limit period. */
export function period(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(1))} s`;
  if (ms < 3_600_000) return `${Number((ms / 60_000).toFixed(1))} min`;
  return `${Number((ms / 3_600_000).toFixed(1))} h`;
}

/** A queue's concurrency limit in words. */
export const concurrencyText = (concurrency: number | null): string => (concurrency === null ? 'no limit' : `at most ${count(concurrency)} held at once`);

/** A queue's rate limit in words. */
export const rateText = (rate: { max: number; periodMs: number } | null): string => (rate === null ? 'no limit' : `${count(rate.max)} claims per ${period(rate.periodMs)}`);
