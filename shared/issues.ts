/** One zod issue, as much of it as a message needs. */
export interface IssueLike {
  path: readonly PropertyKey[];
  message: string;
}

const MAX_ISSUES = 5;

/**
 * Zod issues as one readable line, `path: message; path: message` (at most 5,
 * then `and N more`), not zod's multi-line dump. `top` names a value's root.
 * @example issuesText([{ path: ['targetDate'], message: 'must be a date as YYYY-MM-DD' }], '(payload)') // 'targetDate: must be a date as YYYY-MM-DD'
 */
export function issuesText(issues: readonly IssueLike[], top: string): string {
  const shown = issues.slice(0, MAX_ISSUES).map((i) => `${i.path.map(String).join('.') || top}: ${i.message}`);
  if (issues.length > MAX_ISSUES) shown.push(`and ${issues.length - MAX_ISSUES} more`);
  return shown.join('; ');
}

/**
 * What a payload that fails its type's schema is told, word for word the same
 * wherever it is caught: by the server at enqueue (INVALID_PAYLOAD, BAD_REQUEST),
 * by the producer client before sending, and by the worker at claim (the job's
 * error message when it fails, without retries, with code INVALID_PAYLOAD).
 * @example invalidPayloadMessage('ingestion', [{ path: ['targetDate'], message: 'must be a date as YYYY-MM-DD' }]) // 'payload of "ingestion" is invalid: targetDate: must be a date as YYYY-MM-DD'
 */
export function invalidPayloadMessage(type: string, issues: readonly IssueLike[]): string {
  return `payload of "${type}" is invalid: ${issuesText(issues, '(payload)')}`;
}
