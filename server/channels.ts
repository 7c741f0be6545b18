// The NOTIFY channels skipq listens on. Names that several rooms share (the
// enqueue statement, the key commands, the LISTEN hub) live here, in a file
// that imports nothing.

/** Jobs became claimable; the payload is a queue name, never a job. */
export const JOBS_CHANNEL = 'skipq_jobs';

/** API keys changed; every server drops its key cache at once. */
export const KEYS_CHANNEL = 'skipq_keys';

/** A stopping worker's waiting claims should end now; the payload is its worker id. */
export const INTERRUPT_CHANNEL = 'skipq_interrupt';
