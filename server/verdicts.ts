import { ERROR_CODES, judge, type JobState, type MoveName, type Verdict } from '../shared/index.js';
import { QueueError } from './errors.js';
import type { HeldRef } from './queries/lease.js';
import type { MoveRow } from './queries/row.js';

// Why a move did or did not happen, by the table of moves (shared/lifecycle.ts):
// the one place the server classifies the rows its move functions answered.

/**
 * The verdict (shared/lifecycle.ts) on each input of a move, from the rows its
 * SQL function answered: moved, or judged from the row as it is now; no row
 * means no such job.
 */
export function verdictsOf(move: MoveName, workerId: string, refs: readonly HeldRef[], rows: readonly MoveRow[]): Verdict[] {
  const byId = new Map(rows.map((r) => [r.id, r]));
  return refs.map((ref) => {
    const row = byId.get(ref.id);
    if (!row) return 'not_found';
    if (row.moved) return 'move';
    const verdict = judge(move, row as JobState, { workerId, attempt: ref.attempt });
    // The table lets the move apply, yet its SQL did not make it: one of the
    // move's other guards ended this attempt (heartbeat: past its timeout).
    return verdict === 'move' ? 'lost' : verdict;
  });
}

/** The error a holder's single call answers when its move did not happen. */
export function missError(verdict: Verdict, id: string, attempt: number, workerId: string): QueueError {
  if (verdict === 'not_found') return new QueueError(ERROR_CODES.JOB_NOT_FOUND, `no job with id ${id}`);
  if (verdict === 'cancelled') return new QueueError(ERROR_CODES.JOB_CANCELLED, `job ${id} was cancelled; stop working on it`);
  return new QueueError(
    ERROR_CODES.LEASE_LOST,
    `worker "${workerId}" no longer holds job ${id} (attempt ${attempt}): its lease expired, it timed out, or another attempt or caller ended it`,
  );
}

/** A verdict that is not a success, as the per-item answers spell it. */
export function lostOutcome(verdict: Verdict): 'lease_lost' | 'cancelled' | 'not_found' {
  return verdict === 'cancelled' ? 'cancelled' : verdict === 'not_found' ? 'not_found' : 'lease_lost';
}

/** The ids of `refs` whose verdict is one of `wanted`, in input order. */
export function idsWith(refs: readonly HeldRef[], verdicts: readonly Verdict[], wanted: readonly Verdict[]): string[] {
  return refs.filter((_, i) => wanted.includes(verdicts[i] as Verdict)).map((r) => r.id);
}
