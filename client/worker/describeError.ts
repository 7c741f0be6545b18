import { inspect } from 'node:util';
import { LIMITS } from '../../shared/limits.js';

/** Causes followed below the thrown value; a chain is rarely deeper, a cycle would be endless. */
const MAX_CAUSES = 4;
/** Errors of an AggregateError named in the description. */
const MAX_AGGREGATED = 3;

const UNDESCRIBABLE = '[a thrown value that cannot be described]';

/**
 * Cuts `text` to `limit` characters, saying how much was left out, without
 * splitting a surrogate pair.
 * @example truncateText('x'.repeat(100), 40) // 'xxxxxxxxxxxxxxxx… [truncated: 100 chars]'
 */
export function truncateText(text: string, limit: number = LIMITS.errorMessage): string {
  if (text.length <= limit) return text;
  const full = `… [truncated: ${text.length} chars]`;
  const note = full.length < limit ? full : '';
  let end = limit - note.length;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return text.slice(0, end) + note;
}

/** Reads a property that may be a throwing getter or a Proxy trap. */
function read(value: object, key: string): unknown {
  try {
    return (value as Record<string, unknown>)[key];
  } catch {
    return undefined;
  }
}

function isErrorLike(value: unknown): value is object {
  if (value instanceof Error) return true;
  try {
    return Object.prototype.toString.call(value) === '[object Error]';
  } catch {
    return false;
  }
}

/** A non-Error value, described without calling anything it defines (toString, inspect hooks, getters). */
function inspectSafely(value: unknown, limit: number): string {
  if (typeof value === 'string') return value.slice(0, limit);
  if (typeof value !== 'object' && typeof value !== 'function') return String(value);
  try {
    return inspect(value, { depth: 2, maxArrayLength: 10, maxStringLength: limit, breakLength: Infinity, customInspect: false, getters: false });
  } catch {
    return UNDESCRIBABLE;
  }
}

function describeOne(value: unknown, limit: number): string {
  if (!isErrorLike(value)) return inspectSafely(value, limit);
  const rawName = read(value, 'name');
  const rawMessage = read(value, 'message');
  const name = typeof rawName === 'string' && rawName ? rawName.slice(0, 200) : 'Error';
  // A 20 MiB message is cut before it is copied into anything.
  const message = typeof rawMessage === 'string' ? rawMessage.slice(0, limit) : rawMessage === undefined ? '' : inspectSafely(rawMessage, limit);
  let text = message ? `${name}: ${message}` : name;
  const errors = read(value, 'errors');
  if (Array.isArray(errors) && errors.length > 0) {
    const shown = errors.slice(0, MAX_AGGREGATED).map((e) => describeOne(e, limit)).join('; ');
    text += ` [${errors.length} error${errors.length === 1 ? '' : 's'}: ${shown}${errors.length > MAX_AGGREGATED ? '; …' : ''}]`;
  }
  return text;
}

/**
 * Describes anything a handler may throw, never throwing itself: an Error as
 * `name: message` followed by its causes (at most four), anything else through
 * a safe inspect (no `toString`, no inspect hooks, no getters: an
 * `Object.create(null)` or a throwing `toString` is described too). The text is
 * cut to `limit` characters (default LIMITS.errorMessage, what the server stores).
 * @example describeThrown(new Error('no rows', { cause: new Error('timeout') })) // 'Error: no rows\ncaused by: Error: timeout'
 */
export function describeThrown(value: unknown, limit: number = LIMITS.errorMessage): string {
  try {
    let text = describeOne(value, limit);
    const seen = new Set<unknown>([value]);
    let current = value;
    for (let depth = 0; depth < MAX_CAUSES && text.length < limit; depth++) {
      if (!isErrorLike(current)) break;
      const cause = read(current, 'cause');
      if (cause === undefined || seen.has(cause)) break;
      seen.add(cause);
      text += `\ncaused by: ${describeOne(cause, limit)}`;
      current = cause;
    }
    return truncateText(text, limit);
  } catch {
    return UNDESCRIBABLE;
  }
}
