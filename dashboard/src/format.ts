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
