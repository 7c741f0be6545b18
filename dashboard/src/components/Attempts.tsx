import { useState } from 'preact/hooks';
import type { AttemptView, JobView } from '../../../shared/api.js';
import { api, report, type Failure } from '../api.js';
import { Problem } from './Problem.js';
import { Time } from './Time.js';

const OUTCOME_TEXT: Record<AttemptView['outcome'], string> = {
  completed: 'completed',
  retry_scheduled: 'failed, retry scheduled',
  failed: 'failed for good',
  released: 'released (put back)',
  cancelled: 'cancelled',
};
const ENDED_BY_TEXT: Record<AttemptView['endedBy'], string> = {
  complete: 'by its worker',
  fail: 'by its worker',
  release: 'by its worker',
  rescue: 'by the rescuer (lease ran out)',
  cancel: 'by a cancel',
  complete_task: 'by SQL complete_task',
  fail_task: 'by SQL fail_task',
};

function ErrorText({ code, error }: { code: string | null; error: string | null }) {
  if (!error && !code) return <span class="muted">—</span>;
  return (
    <>
      {code && <code>{code}</code>}
      {error && (
        <pre class="error-text" data-testid="attempt-error">
          {error}
        </pre>
      )}
    </>
  );
}

/**
 * Every attempt of a job: the ended ones from its history (jobs.get carries
 * the latest 20; "Show all" pages through jobs.attempts), and the running one,
 * which has no history row until it ends, from the job itself.
 */
export function Attempts({ job, latest }: { job: JobView; latest: readonly AttemptView[] }) {
  const [all, setAll] = useState<AttemptView[] | null>(null);
  const [failure, setFailure] = useState<Failure | null>(null);
  const running = job.status === 'claimed' || job.status === 'processing';
  // Claims so far, less the one still running: the ended attempts the history holds.
  const ended = job.attempt - (running ? 1 : 0);
  const shown = all && all.length >= latest.length ? all : latest;

  const loadAll = async () => {
    setFailure(null);
    try {
      const rows: AttemptView[] = [];
      let after = 0;
      for (;;) {
        const page = await api.jobs.attempts.query({ id: job.id, after, limit: 1000 });
        rows.push(...page.attempts);
        if (page.nextAfter === null) break;
        after = page.nextAfter;
      }
      setAll(rows);
    } catch (error) {
      setFailure(report(error));
    }
  };

  if (job.attempt === 0) return <p class="muted">Not claimed yet.</p>;
  return (
    <>
      <div class="table-wrap">
        <table class="cards" data-testid="attempts">
          <caption class="visually-hidden">Attempts of job {job.id}, oldest first</caption>
          <thead>
            <tr>
              <th scope="col" class="num">
                Attempt
              </th>
              <th scope="col">Worker</th>
              <th scope="col">Started</th>
              <th scope="col">Ended</th>
              <th scope="col">Outcome</th>
              <th scope="col">Error</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((a) => (
              <tr key={a.attempt} data-attempt={a.attempt} data-outcome={a.outcome}>
                <td class="num" data-label="Attempt">
                  {a.attempt}
                </td>
                <td data-label="Worker">{a.workerId ? <span class="mono">{a.workerId}</span> : <span class="muted">—</span>}</td>
                <td data-label="Started">
                  <Time at={a.startedAt} />
                </td>
                <td data-label="Ended">
                  <Time at={a.finishedAt} />
                </td>
                <td data-label="Outcome">
                  {OUTCOME_TEXT[a.outcome] ?? a.outcome} <span class="muted small">{ENDED_BY_TEXT[a.endedBy] ?? a.endedBy}</span>
                </td>
                <td data-label="Error">
                  <ErrorText code={a.errorCode} error={a.error} />
                </td>
              </tr>
            ))}
            {running && (
              <tr data-attempt={job.attempt} data-outcome="running">
                <td class="num" data-label="Attempt">
                  {job.attempt}
                </td>
                <td data-label="Worker">{job.workerId ? <span class="mono">{job.workerId}</span> : <span class="muted">—</span>}</td>
                <td data-label="Started">
                  <Time at={job.startedAt} />
                </td>
                <td data-label="Ended">
                  <span class="muted">running, lease until </span>
                  <Time at={job.leaseExpiresAt} />
                </td>
                <td data-label="Outcome">{job.status}</td>
                <td data-label="Error">
                  <span class="muted">—</span>
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      {shown.length < ended && (
        <p>
          <span class="muted small">Showing the latest {shown.length} of {ended} ended attempts. </span>
          <button type="button" class="small" onClick={() => void loadAll()}>
            Show all {ended} attempts
          </button>
        </p>
      )}
      <Problem failure={failure} what="read every attempt" />
    </>
  );
}
