import { absolute, relative } from '../format.js';

/**
 * A time shown relative to now ("12 s ago"), or as date and time with
 * `absolute`; the other form is in its title, the exact instant in datetime.
 */
export function Time({ at, empty = '—', absolute: full = false }: { at: Date | null | undefined; empty?: string; absolute?: boolean }) {
  if (!at) return <span class="muted">{empty}</span>;
  return (
    <time dateTime={at.toISOString()} title={full ? relative(at) : absolute(at)}>
      {full ? absolute(at) : relative(at)}
    </time>
  );
}
