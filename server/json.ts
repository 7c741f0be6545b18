import { randomBytes } from 'node:crypto';
import { ERROR_CODES, LIMITS } from '../shared/index.js';
import { QueueError } from './errors.js';

// PostgreSQL's jsonb cannot hold U+0000; an escaped backslash before "u0000" is fine.
const NUL_ESCAPE = /(^|[^\\])(\\\\)*\\u0000/;
// JSON.stringify writes a lone UTF-16 surrogate as an escape (a valid pair
// stays as it is), which PostgreSQL's json input rejects; refused here, per
// value, instead of failing the whole statement it would ride in.
const LONE_SURROGATE_ESCAPE = /(^|[^\\])(\\\\)*\\ud[89a-f][0-9a-f]{2}/i;

function depthOf(value: unknown, limit: number, depth = 0): number {
  if (depth > limit || typeof value !== 'object' || value === null) return depth;
  let max = depth;
  for (const child of Array.isArray(value) ? value : Object.values(value)) {
    if (typeof child === 'object' && child !== null) {
      max = Math.max(max, depthOf(child, limit, depth + 1));
      if (max > limit) return max;
    }
  }
  return max;
}

/**
 * Serialises a payload, result or progress value for a jsonb column, refusing
 * what PostgreSQL would reject or what would hurt the server: values that are
 * not JSON, more than `maxBytes` of it, nesting deeper than LIMITS.jsonDepth,
 * and the NUL character.
 */
export function toJsonText(value: unknown, maxBytes: number, what: string): string {
  // depthOf counts the outermost container as 0: 64 levels of nesting is depth 63.
  if (depthOf(value, LIMITS.jsonDepth) >= LIMITS.jsonDepth) {
    throw new QueueError(ERROR_CODES.INVALID_INPUT, `${what} is nested deeper than ${LIMITS.jsonDepth} levels`);
  }
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw new QueueError(ERROR_CODES.INVALID_INPUT, `${what} is not JSON: ${(error as Error).message}`);
  }
  if (text === undefined) throw new QueueError(ERROR_CODES.INVALID_INPUT, `${what} is not a JSON value`);
  // Bytes, not characters: UTF-8 may take up to 3 bytes per UTF-16 unit.
  if (text.length > maxBytes || (text.length * 3 > maxBytes && Buffer.byteLength(text) > maxBytes)) {
    throw new QueueError(ERROR_CODES.PAYLOAD_TOO_LARGE, `${what} is ${Buffer.byteLength(text)} bytes of JSON; the limit is ${maxBytes}`);
  }
  if (text.includes('\\u0000') && NUL_ESCAPE.test(text)) {
    throw new QueueError(ERROR_CODES.INVALID_INPUT, `${what} contains the NUL character (\\u0000), which PostgreSQL cannot store`);
  }
  if (text.includes('\\ud') && LONE_SURROGATE_ESCAPE.test(text)) {
    throw new QueueError(ERROR_CODES.INVALID_INPUT, `${what} contains a lone UTF-16 surrogate, which PostgreSQL's json type rejects`);
  }
  return text;
}

// What stringifyAnswer collects while it runs: the texts of the RawJson values
// met, each written as the string "<token><index>" to be replaced afterwards.
// The token is drawn at the first RawJson, so answers without one pay nothing.
let collecting: { token: string | undefined; texts: string[] } | undefined;

/**
 * A JSON value kept as its text: a claimed job's payload goes from jsonb into
 * the answer without being parsed, walked by the transformer and written
 * again. Measured with 4 KiB payloads (W3 drain, server CPU per job): parsing
 * the jsonb, superjson's walk and JSON.stringify of the payloads were about
 * half of the server's CPU (pg parseRow 11%, superjson walk 19%, sendJson's
 * stringify 19% of the busy time). Where stringifyAnswer writes the answer
 * (sendJson: the fast path and REST) the text is spliced in as it is; any
 * other writer (tRPC's adapter, an in-process caller's JSON.stringify) gets
 * the parsed value from toJSON, so the answer is the same JSON either way.
 */
export class RawJson {
  constructor(readonly text: string) {}

  toJSON(): unknown {
    if (collecting === undefined) return JSON.parse(this.text);
    collecting.token ??= `skipq-raw-json-${randomBytes(8).toString('hex')}-`;
    collecting.texts.push(this.text);
    return `${collecting.token}${collecting.texts.length - 1}`;
  }
}

/**
 * JSON.stringify, with each RawJson's text written as it is. The placeholder
 * carries a random token per call, so no string in the answer (an id, an
 * error message) can be taken for one.
 */
export function stringifyAnswer(value: unknown): string {
  const own: { token: string | undefined; texts: string[] } = { token: undefined, texts: [] };
  collecting = own;
  let text: string;
  try {
    text = JSON.stringify(value);
  } finally {
    collecting = undefined;
  }
  if (own.token === undefined) return text;
  const parts = text.split(`"${own.token}`);
  let out = parts[0]!;
  for (let i = 1; i < parts.length; i++) {
    const part = parts[i]!;
    const end = part.indexOf('"');
    out += own.texts[Number(part.slice(0, end))]! + part.slice(end + 1);
  }
  return out;
}

/** JSON texts (each a whole JSON value) as the text of one JSON array of them. */
export function jsonArrayText(texts: readonly string[]): string {
  return `[${texts.join(',')}]`;
}
