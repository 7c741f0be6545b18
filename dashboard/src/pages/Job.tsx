import type { ComponentChildren } from 'preact';
import { useRef, useState } from 'preact/hooks';
import type { JobView } from '../../../shared/api.js';
import type { JobExplanation } from '../../../shared/queues.js';
import { CANCELLABLE, RETRYABLE, useAction } from '../actions.js';
import { api } from '../api.js';
import { config } from '../config.js';
import { Attempts } from '../components/Attempts.js';
import { Confirm, type ConfirmRequest } from '../components/Confirm.js';
import { Flow } from '../components/Flow.js';
import { Json } from '../components/Json.js';
import { Problem } from '../components/Problem.js';
import { Status } from '../components/Status.js';
import { Time } from '../components/Time.js';
import { absolute } from '../format.js';
import { useLive } from '../live.js';
import { Link } from '../router.js';

const FINAL = new Set(['completed', 'failed', 'cancelled']);
// Children shown on a parent's page (one jobs.children page).
const CHILDREN_SHOWN = 100;

function answerOf(verb: 'Retried' | 'Cancelled', job: JobView): string {
  if (job.status === 'pending') return `${verb}: the job is pending, due ${absolute(job.scheduledFor)}.`;
  if (job.cancelRequestedAt && job.status !== 'cancelled') return `${verb}: the job is ${job.status}; its handler is asked to stop at its next heartbeat.`;
  return `${verb}: the job is ${job.status}.`;
}

/** Why the job is or is not being claimed (jobs.explain), by the rules the claim follows. */
function Explain({ explanation }: { explanation: JobExplanation }) {
  return (
    <div data-testid="explain">
      <p>
        {explanation.runnable ? (
          <strong>The next claim can take it.</strong>
        ) : explanation.status === 'pending' ? (
          <strong>The next claim cannot take it:</strong>
        ) : (
          <span>It is {explanation.status}:</span>
        )}
      </p>
      <ul class="reasons">
        {explanation.reasons.map((reason) => (
          <li key={reason.code}>
            <code data-testid="explain-code">{reason.code}</code> {reason.message}
            {reason.until && (
              <>
                {' '}
                (until <Time at={reason.until} />)
              </>
            )}
            {reason.children && (
              <span class="muted">
                {' '}
                ({reason.children.left} of {reason.children.total} children left:{' '}
                {Object.entries(reason.children.byStatus)
                  .filter(([, n]) => n > 0)
                  .map(([status, n]) => `${n} ${status}`)
                  .join(', ')}
                )
              </span>
            )}
          </li>
        ))}
      </ul>
    </div>
  );
}

function Field({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    <>
      <dt>{label}</dt>
      <dd>{children}</dd>
    </>
  );
}

/** Payload or result: not fetched into view until asked for, then a collapsible tree. */
function Hidden({ name, value }: { name: 'payload' | 'result'; value: unknown }) {
  const [shown, setShown] = useState(false);
  if (!config.showPayloads) {
    return <p class="muted">Hidden: this server is set to never show payloads or results in the dashboard (SKIPQ_DASHBOARD_PAYLOADS=0).</p>;
  }
  return (
    <div>
      <button type="button" aria-expanded={shown} aria-controls={`${name}-view`} onClick={() => setShown(!shown)}>
        {shown ? `Hide ${name}` : `Show ${name}`}
      </button>
      <div id={`${name}-view`}>{shown && <Json value={value} label={name} />}</div>
    </div>
  );
}

/**
 * One job: its state, why it is or is not running, last attempt and error,
 * payload and result on request, and retry/cancel with the server's answer.
 * Read again on each change (live.ts) until it is finished.
 */
export function Job({ id }: { id: string }) {
  const live = useLive(
    `job:${id}`,
    async () => {
      // One HTTP request: the client batches calls made in the same tick.
      const [job, explanation, children] = await Promise.all([
        api.jobs.get.query({ id }),
        api.jobs.explain.query({ id }),
        api.jobs.children.query({ id, limit: CHILDREN_SHOWN }),
      ]);
      return { job, explanation, children };
    },
    {
      // Until it and every child shown is finished; read again only for events about them.
      live: (data) => !FINAL.has(data.job.status) || data.children.children.some((c) => !FINAL.has(c.status)),
      about: (data) => ({ jobs: data ? [id, ...data.children.children.map((c) => c.id)] : [id] }),
      // A pending job's explanation turns with time and with its queue's state (a delay runs out, a queue is resumed), which no event of the job tells.
      poll: (data) => data?.job.status === 'pending',
    },
  );
  const { busy, answer, run } = useAction();
  const [confirm, setConfirm] = useState<ConfirmRequest | null>(null);
  const answerBox = useRef<HTMLParagraphElement>(null);

  const act = async (verb: 'Retried' | 'Cancelled') => {
    await run(async () => {
      const after = verb === 'Retried' ? await api.jobs.retry.mutate({ id }) : await api.jobs.cancel.mutate({ id });
      await live.reload();
      return answerOf(verb, after);
    });
    // The button pressed may be disabled now (a retried job cannot be retried again): keep the keyboard's place at the answer.
    requestAnimationFrame(() => answerBox.current?.focus());
  };

  const failure = live.failure;
  if (!live.data) {
    return (
      <>
        <h1 tabIndex={-1}>Job {id}</h1>
        <Problem failure={failure} what="read this job" />
        {!failure && <p class="muted">Loading…</p>}
      </>
    );
  }
  const { job, explanation, children } = live.data;
  return (
    <>
      <p class="crumbs">
        <Link href={`/jobs?queue=${encodeURIComponent(job.queue)}`}>← Jobs in {job.queue}</Link>
      </p>
      <h1 tabIndex={-1} class="job-title">
        <span>Job</span> <span class="mono">{job.id}</span>
      </h1>
      <div class="job-head">
        <span data-testid="job-status">
          <Status status={job.status} />
        </span>
        <span>
          {job.type} in {job.queue}
        </span>
        <div class="actions">
          <button
            type="button"
            class="primary"
            disabled={!RETRYABLE.has(job.status)}
            aria-disabled={busy ? 'true' : undefined}
            onClick={() => void act('Retried')}
          >
            Retry
          </button>
          <button
            type="button"
            class="danger"
            disabled={!CANCELLABLE.has(job.status)}
            aria-disabled={busy ? 'true' : undefined}
            onClick={() =>
              !busy &&
              setConfirm({
                title: 'Cancel this job?',
                body: <p>{job.status === 'pending' ? 'It will not run.' : 'Its handler is asked to stop (its AbortSignal fires).'} A cancelled job can be retried.</p>,
                confirmLabel: 'Cancel job',
                danger: true,
                onConfirm: () => void act('Cancelled'),
              })
            }
          >
            Cancel
          </button>
        </div>
      </div>
      <p role="status" tabIndex={-1} ref={answerBox} class={`notice${answer && !answer.ok ? ' refused' : ''}`} data-testid="action-answer">
        {answer?.text}
      </p>
      <Problem failure={failure} what="refresh this job" />

      <section aria-labelledby="h-explain">
        <h2 id="h-explain">Can it run?</h2>
        <Explain explanation={explanation} />
      </section>

      <section aria-labelledby="h-state">
        <h2 id="h-state">State</h2>
        <dl class="fields">
          <Field label="Created">
            <Time at={job.createdAt} />
          </Field>
          <Field label="Scheduled for">
            <Time at={job.scheduledFor} />
          </Field>
          <Field label="Priority">{job.priority}</Field>
          <Field label="Retries used">
            {job.retryCount} of {job.maxRetries}
          </Field>
          <Field label="Timeout per attempt">{job.timeoutMs === null ? <span class="muted">none</span> : `${job.timeoutMs} ms`}</Field>
          <Field label="Unique key">{job.uniqueKey ?? <span class="muted">—</span>}</Field>
          <Field label="Cancel requested">
            <Time at={job.cancelRequestedAt} />
          </Field>
          <Field label="Updated">
            <Time at={job.updatedAt} />
          </Field>
        </dl>
      </section>

      <section aria-labelledby="h-attempts">
        <h2 id="h-attempts">Attempts</h2>
        <Attempts job={job} latest={job.attempts} />
      </section>

      <section aria-labelledby="h-flow" data-testid="flow">
        <h2 id="h-flow">Flow</h2>
        <Flow job={job} children={children.children} more={children.nextCursor !== null} />
      </section>

      <section aria-labelledby="h-progress">
        <h2 id="h-progress">Progress</h2>
        {job.progress === null || job.progress === undefined ? <p class="muted">None reported.</p> : <Json value={job.progress} label="progress" />}
      </section>

      <section aria-labelledby="h-payload">
        <h2 id="h-payload">Payload</h2>
        <Hidden name="payload" value={job.payload} />
      </section>

      <section aria-labelledby="h-result">
        <h2 id="h-result">Result</h2>
        {job.status === 'completed' || job.result !== null ? <Hidden name="result" value={job.result} /> : <p class="muted">None yet.</p>}
      </section>

      <Confirm request={confirm} onClose={() => setConfirm(null)} />
    </>
  );
}
