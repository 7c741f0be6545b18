import { absolute, relative } from '../format.js';

/** A time shown relative to now ("12 s ago"), with the full date in its title and datetime. */
export function Time({ at, empty = '—' }: { at: Date | null | undefined; empty?: string }) {
  if (!at) return <span class="muted">{empty}</span>;
  return (
    <time dateTime={at.toISOString()} title={absolute(at)}>
      {relative(at)}
    </time>
  );
}
