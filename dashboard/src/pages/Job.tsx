import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { JobView } from '../../../shared/api.js';
import { CANCELLABLE, RETRYABLE, cancelJobs, describe, retryJobs } from '../actions.js';
import { api, report, type Failure } from '../api.js';
import { config } from '../config.js';
import { Confirm, type ConfirmRequest } from '../components/Confirm.js';
import { Json } from '../components/Json.js';
import { Problem } from '../components/Problem.js';
import { Status } from '../components/Status.js';
import { Time } from '../components/Time.js';
import { Link } from '../router.js';

/**
 * LIVE, FOR NOW BY POLLING: a job that can still change is read again every
 * REFRESH_MS; the events subscription (events.jobs) replaces this.
 */
const REFRESH_MS = 2000;
const FINAL = new Set(['completed', 'failed', 'cancelled']);

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

/** One job: its state, last attempt and error, payload and result on request, and retry/cancel. */
export function Job({ id }: { id: string }) {
  const [job, setJob] = useState<JobView | null>(null);
  const [failure, setFailure] = useState<Failure | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [confirm, setConfirm] = useState<ConfirmRequest | null>(null);
  const [version, setVersion] = useState(0);

  useEffect(() => {
    let current = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const load = () =>
      api.jobs.get.query({ id }).then(
        (view) => {
          if (!current) return;
          setJob(view);
          setFailure(null);
          if (!FINAL.has(view.status)) timer = setTimeout(load, REFRESH_MS);
        },
        (error: unknown) => current && setFailure(report(error)),
      );
    void load();
    return () => {
      current = false;
      clearTimeout(timer);
    };
  }, [id, version]);

  const act = async (verb: string, action: typeof retryJobs) => {
    setBusy(true);
    const outcome = await action([id]);
    setBusy(false);
    setNotice(describe(verb, outcome));
    setVersion((v) => v + 1);
  };

  if (!job) {
    return (
      <>
        <h1 tabIndex={-1}>Job {id}</h1>
        <Problem failure={failure} what="read this job" />
        {!failure && <p class="muted">Loading…</p>}
      </>
    );
  }
  const finishedAt = job.completedAt ?? job.failedAt;
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
          <button type="button" class="primary" disabled={busy || !RETRYABLE.has(job.status)} onClick={() => void act('Retried', retryJobs)}>
            Retry
          </button>
          <button
            type="button"
            class="danger"
            disabled={busy || !CANCELLABLE.has(job.status)}
            onClick={() =>
              setConfirm({
                title: 'Cancel this job?',
                body: <p>{job.status === 'pending' ? 'It will not run.' : 'Its handler is asked to stop (its AbortSignal fires).'} A cancelled job can be retried.</p>,
                confirmLabel: 'Cancel job',
                danger: true,
                onConfirm: () => void act('Cancelled', cancelJobs),
              })
            }
          >
            Cancel
          </button>
        </div>
      </div>
      <p role="status" class="notice">
        {notice}
      </p>
      <Problem failure={failure} what="refresh this job" />

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
        {job.attempt === 0 ? (
          <p class="muted">Not claimed yet.</p>
        ) : (
          <div class="table-wrap">
            <table class="cards" data-testid="attempts">
              <thead>
                <tr>
                  <th scope="col">Attempt</th>
                  <th scope="col">Worker</th>
                  <th scope="col">Started</th>
                  <th scope="col">Lease until</th>
                  <th scope="col">Ended</th>
                  <th scope="col">Error</th>
                </tr>
              </thead>
              <tbody>
                <tr>
                  <td data-label="Attempt">
                    {job.attempt} (latest)
                  </td>
                  <td data-label="Worker">
                    {job.workerId ? <span class="mono">{job.workerId}</span> : <span class="muted">—</span>}
                  </td>
                  <td data-label="Started">
                    <Time at={job.startedAt} />
                  </td>
                  <td data-label="Lease until">
                    <Time at={job.leaseExpiresAt} />
                  </td>
                  <td data-label="Ended">
                    <Time at={finishedAt} />
                  </td>
                  <td data-label="Error">
                    {job.error ? (
                      <>
                        {job.errorCode && <code>{job.errorCode}</code>}
                        <pre class="error-text" data-testid="job-error">
                          {job.error}
                        </pre>
                      </>
                    ) : (
                      <span class="muted">—</span>
                    )}
                  </td>
                </tr>
              </tbody>
            </table>
          </div>
        )}
        {/* Every attempt with its own worker, times and error goes here once jobs.attempts exists (attempt history). */}
        {job.attempt > 1 && <p class="muted small">Earlier attempts ({job.attempt - 1}) are not kept yet; the attempt history (jobs.attempts) will list each one.</p>}
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

      {/* The flow's parent and children (jobs.enqueueFlow) and explain's reasons (jobs.explain) go here once those procedures exist. */}
      <p class="muted small">Flow parent and children, and why a job is waiting (explain), will show here once the server has flows and jobs.explain.</p>
      <Confirm request={confirm} onClose={() => setConfirm(null)} />
    </>
  );
}
