// The worker's pure helpers: what counts as a JSON value and how thrown values are described.
// (What the worker does with the server's per-item answers is tested against the real server in workerIsolation.test.ts.)
import { describe, expect, it } from 'vitest';
import { checkJsonValue } from '../client/worker/jsonValue.js';
import { describeThrown, truncateText } from '../client/worker/describeError.js';

describe('checkJsonValue', () => {
  it('accepts what JSON stores unchanged, at exactly the size and depth limits', () => {
    expect(checkJsonValue({ a: [1, 'é', null, true], d: new Date(0), skip: undefined }, 1000)).toMatchObject({ ok: true });
    const text = 'x'.repeat(98); // "xxx…" is 100 bytes of JSON
    expect(checkJsonValue(text, 100)).toEqual({ ok: true, bytes: 100 });
    expect(checkJsonValue(text, 99)).toMatchObject({ ok: false, problem: 'too_large' });
    let deep: unknown = 1;
    for (let i = 0; i < 64; i++) deep = [deep];
    expect(checkJsonValue(deep, 1000)).toMatchObject({ ok: true });
    expect(checkJsonValue([deep], 1000)).toMatchObject({ ok: false, problem: 'too_deep' });
  });

  it('names the path of the first value JSON cannot hold', () => {
    expect(checkJsonValue({ a: [{ b: 1n }] }, 1000)).toEqual({ ok: false, problem: 'not_json', message: 'at a[0].b: a BigInt is not JSON; convert it to a number or a string' });
    expect(checkJsonValue({ 'odd key': new Set() }, 1000)).toMatchObject({ message: expect.stringMatching(/^at \["odd key"\]: a Set is not JSON/) });
    // eslint-disable-next-line no-sparse-arrays
    expect(checkJsonValue([1, , 3], 1000)).toMatchObject({ message: 'at [1]: a hole in an array is not JSON' });
    expect(checkJsonValue({ get boom() { throw new Error('getter'); } }, 1000)).toMatchObject({ ok: false, message: 'reading it threw: getter' });
  });
});

describe('describeThrown', () => {
  it('never throws, bounds causes and length', () => {
    const loop: Error & { cause?: unknown } = new Error('a');
    loop.cause = loop;
    expect(describeThrown(loop)).toBe('Error: a');
    const proxy = new Proxy({}, { get() { throw new Error('trap'); }, getPrototypeOf() { throw new Error('trap'); } });
    expect(typeof describeThrown(proxy)).toBe('string');
    expect(describeThrown(new AggregateError([new Error('x'), 'y'], 'both'))).toBe("AggregateError: both [2 errors: Error: x; y]");
    expect(describeThrown('z'.repeat(100), 40)).toHaveLength(40);
    expect(truncateText('x'.repeat(100), 40)).toBe(`${'x'.repeat(16)}… [truncated: 100 chars]`);
  });
});
