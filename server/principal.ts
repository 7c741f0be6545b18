// Who is calling: vocabulary the auth, context, router and lease rooms all
// share. It imports nothing, so none of them has to import another for it.

/** Roles an API key can have. `admin` may do everything. */
export type Role = 'producer' | 'worker' | 'admin';

/** Who is calling: a role, optionally limited to some queues (null: all). */
export interface Principal {
  role: Role;
  queues: readonly string[] | null;
  keyId: string | null;
}

/** The caller when the server runs without API keys (loopback only). */
export const OPEN_PRINCIPAL: Principal = Object.freeze({ role: 'admin', queues: null, keyId: null });

/**
 * The worker id as stored: with API keys, prefixed by the key's id, so a key
 * can only ever act on jobs claimed with that same key.
 */
export function storedWorkerId(principal: Principal, workerId: string): string {
  return principal.keyId ? `${principal.keyId}/${workerId}` : workerId;
}
