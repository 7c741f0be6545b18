// The NOTIFY channels skipq listens on. Names that several rooms share (the
// enqueue statement, the key commands, the LISTEN hub) live here, in a file
// that imports nothing.

/** Jobs became claimable; the payload is a queue name, never a job. */
export const JOBS_CHANNEL = 'skipq_jobs';

/** API keys changed; every server drops its key cache at once. */
export const KEYS_CHANNEL = 'skipq_keys';

/** A stopping worker's waiting claims should end now; the payload is its worker id. */
export const INTERRUPT_CHANNEL = 'skipq_interrupt';

/** A server waits for a job to finish; the payload is `<server id>:<job id>`. */
export const WAITING_CHANNEL = 'skipq_waiting';

/** Jobs somebody waits for have finished; the payload is their ids, comma-separated (never sent for jobs nobody waits for). */
export const DONE_CHANNEL = 'skipq_done';

/** Job events were logged (the events migration's triggers send it, coalesced per transaction); the payload is empty. */
export const EVENTS_CHANNEL = 'skipq_events';
