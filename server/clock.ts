/**
 * The clock a move reads: the server's `now` option when it has one (tests
 * travel in time with it), else null, which the SQL move functions read as
 * skipq_now(): the skipq.now setting or the transaction's now().
 */
export function clockOf(deps: { now?: (() => Date) | undefined }): Date | null {
  return deps.now?.() ?? null;
}
