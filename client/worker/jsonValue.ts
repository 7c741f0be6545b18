import { LIMITS } from '../../shared/limits.js';

/**
 * What a result or progress value may be: exactly what the server can store in
 * a jsonb column without changing it. Checked in the worker so that a bad value
 * fails its own job with a clear message instead of making the server refuse
 * the whole batch it rode in.
 *
 * Accepted:
 * - `null`, booleans, finite numbers (`-0` is stored as `0`), strings that are
 *   well-formed UTF-16 and hold no U+0000 (PostgreSQL's jsonb can hold neither);
 * - arrays of accepted values, every index present;
 * - plain objects (prototype `Object.prototype` or `null`) whose own enumerable
 *   string keys (no U+0000, well-formed) hold accepted values; a property whose
 *   value is `undefined` is left out, as JSON.stringify does and as an optional
 *   TypeScript field means; symbol keys are not JSON and are ignored;
 * - any object with a `toJSON()` method (a `Date`), replaced by what it returns,
 *   which is checked in turn.
 *
 * Refused, with the path of the first offender: BigInt, NaN, ±Infinity,
 * functions, symbols, `undefined` (at the top or in an array) and array holes,
 * `Map`, `Set`, class instances and every other non-plain object (JSON.stringify
 * would silently turn them into `{}` or drop their prototype), cycles, nesting
 * deeper than LIMITS.jsonDepth, and more than `maxBytes` UTF-8 bytes of JSON text.
 */
export type JsonCheck =
  | { ok: true; /** An upper bound of the JSON text's UTF-8 size (exact when it came close to the limit). */ bytes: number }
  | { ok: false; problem: 'not_json' | 'too_large' | 'too_deep'; message: string };

interface Walk {
  /** Containers from the top down to the current one, for cycles and paths. */
  stack: object[];
  keys: Array<string | number>;
  /** Bounds of the JSON text's size in UTF-8 bytes. */
  low: number;
  high: number;
  failure: { problem: 'not_json' | 'too_deep'; message: string } | undefined;
}

// Longest JSON text of a number: "-1.2345678901234567e-308".
const NUMBER_BYTES = 24;
const isWellFormed: (s: string) => boolean =
  typeof (String.prototype as { isWellFormed?: unknown }).isWellFormed === 'function'
    ? (s) => (s as unknown as { isWellFormed(): boolean }).isWellFormed()
    : (s) => !/[\ud800-\udbff](?![\udc00-\udfff])|(?:^|[^\ud800-\udbff])[\udc00-\udfff]/.test(s);

function pathOf(w: Walk, last?: string | number): string {
  const keys = last === undefined ? w.keys : [...w.keys, last];
  let path = '';
  for (const k of keys) path += typeof k === 'number' ? `[${k}]` : /^[A-Za-z_$][\w$]*$/.test(k) ? `.${k}` : `[${JSON.stringify(k)}]`;
  return path;
}

function fail(w: Walk, key: string | number | undefined, what: string): false {
  const at = pathOf(w, key);
  w.failure = { problem: 'not_json', message: `${at ? `at ${at.replace(/^\./, '')}: ` : ''}${what}` };
  return false;
}

function badString(s: string): string | undefined {
  if (s.includes('\u0000')) return 'contains the NUL character (U+0000), which PostgreSQL cannot store';
  if (!isWellFormed(s)) return 'contains a lone UTF-16 surrogate, which PostgreSQL cannot store';
  return undefined;
}

function typeName(value: object): string {
  const ctor = (value as { constructor?: { name?: unknown } }).constructor;
  return typeof ctor === 'function' && typeof ctor.name === 'string' && ctor.name ? `a ${ctor.name}` : 'an object with a prototype';
}

/** Walks one value; false (with w.failure set) at the first thing JSON cannot hold unchanged. */
function walk(w: Walk, value: unknown, key: string | number | undefined): boolean {
  switch (typeof value) {
    case 'string': {
      const bad = badString(value);
      if (bad) return fail(w, key, `the string ${bad}`);
      // Each UTF-16 unit is 1 to 3 UTF-8 bytes, or 6 as an escape; plus the quotes.
      w.low += value.length + 2;
      w.high += value.length * 6 + 2;
      return true;
    }
    case 'number':
      if (!Number.isFinite(value)) return fail(w, key, `${value} is not a JSON number (JSON would store null)`);
      w.low += 1;
      w.high += NUMBER_BYTES;
      return true;
    case 'boolean':
      w.low += 4;
      w.high += 5;
      return true;
    case 'bigint':
      return fail(w, key, 'a BigInt is not JSON; convert it to a number or a string');
    case 'undefined':
      return fail(w, key, 'undefined is not JSON');
    case 'function':
      return fail(w, key, 'a function is not JSON');
    case 'symbol':
      return fail(w, key, 'a symbol is not JSON');
  }
  if (value === null) {
    w.low += 4;
    w.high += 4;
    return true;
  }
  const object = value as object;
  const toJSON = (object as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === 'function') return walk(w, toJSON.call(object, key === undefined ? '' : String(key)), key);
  const isArray = Array.isArray(object);
  if (!isArray) {
    const proto: unknown = Object.getPrototypeOf(object);
    if (proto !== Object.prototype && proto !== null) {
      return fail(w, key, `${typeName(object)} is not JSON (it would be stored as a plain object or {}); return plain objects and arrays`);
    }
  }
  if (w.stack.includes(object)) return fail(w, key, 'a cycle: the value contains itself');
  if (w.stack.length >= LIMITS.jsonDepth) {
    w.failure = { problem: 'too_deep', message: `nested deeper than ${LIMITS.jsonDepth} levels (at ${pathOf(w, key)})` };
    return false;
  }
  w.stack.push(object);
  if (key !== undefined) w.keys.push(key);
  const ok = isArray ? walkArray(w, object as unknown[]) : walkObject(w, object);
  w.stack.pop();
  if (key !== undefined) w.keys.pop();
  return ok;
}

function walkArray(w: Walk, array: readonly unknown[]): boolean {
  w.low += 2 + Math.max(0, array.length - 1);
  w.high += 2 + Math.max(0, array.length - 1);
  for (let i = 0; i < array.length; i++) {
    const item = array[i];
    if (item === undefined) return fail(w, i, i in array ? 'undefined is not JSON (an array would store null)' : 'a hole in an array is not JSON');
    if (!walk(w, item, i)) return false;
  }
  return true;
}

function walkObject(w: Walk, object: object): boolean {
  w.low += 2;
  w.high += 2;
  let first = true;
  for (const k in object) {
    if (!Object.prototype.hasOwnProperty.call(object, k)) continue;
    const v = (object as Record<string, unknown>)[k];
    // JSON.stringify leaves out undefined properties; so does this.
    if (v === undefined) continue;
    const bad = badString(k);
    if (bad) return fail(w, k, `the key ${bad}`);
    const extra = first ? 0 : 1;
    first = false;
    w.low += k.length + 3 + extra;
    w.high += k.length * 6 + 3 + extra;
    if (!walk(w, v, k)) return false;
  }
  return true;
}

/**
 * Checks that `value` is JSON the server will store unchanged, in one walk;
 * JSON.stringify runs only when the walk's size bounds straddle `maxBytes`.
 * `undefined` is refused: callers that mean "no value" check for it first.
 * @example checkJsonValue({ rows: 7 }, 1_048_576) // { ok: true, bytes: 53 } (an upper bound; the text is 10)
 */
export function checkJsonValue(value: unknown, maxBytes: number): JsonCheck {
  const w: Walk = { stack: [], keys: [], low: 0, high: 0, failure: undefined };
  let ok: boolean;
  try {
    ok = walk(w, value, undefined);
  } catch (error) {
    // A getter or toJSON that throws: the value cannot be serialised.
    return { ok: false, problem: 'not_json', message: `reading it threw: ${error instanceof Error ? error.message : 'a non-Error value'}` };
  }
  if (!ok) return { ok: false, ...(w.failure as { problem: 'not_json' | 'too_deep'; message: string }) };
  if (w.high <= maxBytes) return { ok: true, bytes: w.high };
  if (w.low > maxBytes) return { ok: false, problem: 'too_large', message: `at least ${w.low} bytes of JSON; the limit is ${maxBytes}` };
  let bytes: number;
  try {
    bytes = Buffer.byteLength(JSON.stringify(value));
  } catch (error) {
    return { ok: false, problem: 'not_json', message: `reading it threw: ${error instanceof Error ? error.message : 'a non-Error value'}` };
  }
  if (bytes > maxBytes) return { ok: false, problem: 'too_large', message: `${bytes} bytes of JSON; the limit is ${maxBytes}` };
  return { ok: true, bytes };
}
