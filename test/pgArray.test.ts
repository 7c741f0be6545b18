import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { numberArrayLiteral, textArrayLiteral, timestampArrayLiteral } from '../server/pgArray.js';
import { createTestDb, type TestDb } from './support/db.js';

// The enqueue statement sends its columns as array literals it writes itself
// (server/pgArray.ts); PostgreSQL must read back exactly what went in, as it
// does from node-postgres's own conversion of a JavaScript array.

const texts = [
  'plain',
  '',
  'NULL',
  'null',
  ' blanks around ',
  'a,b',
  '{braces}',
  'say "hi"',
  'back\\slash',
  'both \\" at once \\\\',
  "it's",
  'ünïcödé 日本語 🎉',
  'tab\tnewline\n',
  null,
];

describe('array literals of statement parameters', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('reads every text back as it was, NULL as null, whatever it holds', async () => {
    const { rows } = await db.pool.query<{ ours: Array<string | null>; theirs: Array<string | null> }>('SELECT $1::text[] AS ours, $2::text[] AS theirs', [textArrayLiteral(texts), texts]);
    expect(rows[0]?.ours).toEqual(texts);
    expect(rows[0]?.theirs).toEqual(texts);
  });

  it('reads int and bigint arrays back as they were', async () => {
    const ints = [0, -1, 2_147_483_647, -2_147_483_648, null, 3];
    const bigs = [0, 9_007_199_254_740_991, -5, null];
    const { rows } = await db.pool.query<{ i: Array<number | null>; b: Array<string | null> }>('SELECT $1::int[] AS i, $2::bigint[] AS b', [numberArrayLiteral(ints), numberArrayLiteral(bigs)]);
    expect(rows[0]?.i).toEqual(ints);
    expect(rows[0]?.b).toEqual(bigs.map((b) => (b === null ? null : String(b))));
  });

  it('reads timestamps back as the same instants', async () => {
    const dates = [new Date(0), new Date('2030-05-06T07:08:09.123Z'), null, new Date('1999-12-31T23:59:59.999+05:30')];
    const { rows } = await db.pool.query<{ t: Array<Date | null> }>('SELECT $1::timestamptz[] AS t', [timestampArrayLiteral(dates)]);
    expect(rows[0]?.t.map((d) => d?.getTime() ?? null)).toEqual(dates.map((d) => d?.getTime() ?? null));
  });

  it('writes an empty array as {}', () => {
    expect(textArrayLiteral([])).toBe('{}');
    expect(numberArrayLiteral([])).toBe('{}');
  });
});
