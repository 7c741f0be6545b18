import { describe, expect, it } from 'vitest';
import { readEnv, readSsePingMs } from '../server/env.js';

describe('the server\'s environment', () => {
  it('applies the defaults the README lists when nothing is set', () => {
    expect(readEnv({})).toMatchObject({ PORT: 3000, HOST: '127.0.0.1', SKIPQ_PG_POOL_SIZE: 10, SKIPQ_POLL_INTERVAL_MS: 1000, SKIPQ_RETENTION_DAYS: 7, SKIPQ_FAILED_RETENTION_DAYS: 30, SKIPQ_REQUIRE_AUTH: false });
  });

  it('names every bad variable in one error', () => {
    expect(() => readEnv({ PORT: 'abc', SKIPQ_PG_POOL_SIZE: '1', LOG_LEVEL: 'loud' })).toThrow(/invalid environment:\n {2}PORT: .*\n {2}SKIPQ_PG_POOL_SIZE: .*\n {2}LOG_LEVEL: /);
  });

  it('reads SKIPQ_SSE_PING_MS: 10 s by default, 0 for no pings, 50..600000 ms, anything else refused by name', () => {
    expect(readSsePingMs({})).toBe(10_000);
    expect(readSsePingMs({ SKIPQ_SSE_PING_MS: '' })).toBe(10_000);
    expect(readSsePingMs({ SKIPQ_SSE_PING_MS: '0' })).toBe(0);
    expect(readSsePingMs({ SKIPQ_SSE_PING_MS: '50' })).toBe(50);
    expect(readSsePingMs({ SKIPQ_SSE_PING_MS: '600000' })).toBe(600_000);
    for (const bad of ['49', '600001', '1.5', 'often', '-1']) {
      expect(() => readSsePingMs({ SKIPQ_SSE_PING_MS: bad }), bad).toThrow(`invalid environment:\n  SKIPQ_SSE_PING_MS: 0 (no pings) or an integer from 50 to 600000 was expected, got "${bad}"`);
    }
  });
});
