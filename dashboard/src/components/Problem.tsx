import type { Failure } from '../api.js';

/** A failed call, as an alert with the server's message. */
export function Problem({ failure, what }: { failure: Failure | null; what: string }) {
  if (!failure) return null;
  return (
    <p class="problem" role="alert">
      Could not {what}: {failure.message} <span class="muted">({failure.code})</span>
    </p>
  );
}
