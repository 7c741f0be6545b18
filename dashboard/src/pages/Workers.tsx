import { useEffect, useState } from 'preact/hooks';
import type { JobView } from '../../../shared/api.js';
import { api, report, type Failure } from '../api.js';
import { Problem } from '../components/Problem.js';
import { Time } from '../components/Time.js';
import { Link } from '../router.js';

// LIVE, FOR NOW BY POLLING; the events subscription replaces it.
const REFRESH_MS = 2000;
// One page of jobs.list, the most it gives in one call.
const HELD_LIMIT = 500;

interface WorkerRow {
  workerId: string;
  jobs: JobView[];
  queues: string[];
  /** The latest lease expiry among its jobs: it heartbeat recently if this is in the future. */
  leaseUntil: Date | null;
}

function group(jobs: readonly JobView[]): WorkerRow[] {
  const byWorker = new Map<string, WorkerRow>();
  for (const job of jobs) {
    const id = job.workerId ?? '(unknown)';
    let row = byWorker.get(id);
    if (!row) {
      row = { workerId: id, jobs: [], queues: [], leaseUntil: null };
      byWorker.set(id, row);
    }
    row.jobs.push(job);
    if (!row.queues.includes(job.queue)) row.queues.push(job.queue);
    if (job.leaseExpiresAt && (!row.leaseUntil || job.leaseExpiresAt > row.leaseUntil)) row.leaseUntil = job.leaseExpiresAt;
  }
  return [...byWorker.values()].sort((a, b) => b.jobs.length - a.jobs.length || a.workerId.localeCompare(b.workerId));
}

/**
 * Workers holding jobs now, read from the held jobs themselves (jobs.list of
 * claimed and processing). Idle workers and heartbeat times need a workers
 * view on the server (worker registry); until then this is what is known.
 */
export function Workers() {
  const [held, setHeld] = useState<{ jobs: JobView[]; more: boolean } | null>(null);
  const [failure, setFailure] = useState<Failure | null>(null);
  useEffect(() => {
    let current = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const load = () =>
      api.jobs.list.query({ status: ['claimed', 'processing'], limit: HELD_LIMIT }).then(
        (page) => {
          if (!current) return;
          setHeld({ jobs: page.jobs, more: page.nextCursor !== null });
          setFailure(null);
          timer = setTimeout(load, REFRESH_MS);
        },
        (error: unknown) => current && setFailure(report(error)),
      );
    void load();
    return () => {
      current = false;
      clearTimeout(timer);
    };
  }, []);
  const rows = held ? group(held.jobs) : [];
  return (
    <>
      <h1 tabIndex={-1}>Workers</h1>
      <p class="muted">Workers that hold jobs now, from the jobs they hold. Idle workers and last heartbeat times will show once the server keeps a list of workers.</p>
      <Problem failure={failure} what="read the held jobs" />
      {held && rows.length === 0 && <p>No worker holds a job right now.</p>}
      {rows.length > 0 && (
        <div class="table-wrap">
          <table class="cards" data-testid="workers">
            <thead>
              <tr>
                <th scope="col">Worker</th>
                <th scope="col" class="num">
                  Jobs held
                </th>
                <th scope="col">Queues</th>
                <th scope="col">Latest lease until</th>
                <th scope="col">Jobs</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((row) => (
                <tr key={row.workerId}>
                  <th scope="row" data-label="Worker">
                    <span class="mono">{row.workerId}</span>
                  </th>
                  <td class="num" data-label="Jobs held">
                    {row.jobs.length}
                  </td>
                  <td data-label="Queues">{row.queues.join(', ')}</td>
                  <td data-label="Latest lease until">
                    <Time at={row.leaseUntil} />
                  </td>
                  <td data-label="Jobs">
                    {row.jobs.slice(0, 3).map((job) => (
                      <div key={job.id}>
                        <Link href={`/jobs/${job.id}`} class="mono small">
                          {job.id}
                        </Link>
                      </div>
                    ))}
                    {row.jobs.length > 3 && <span class="muted small">and {row.jobs.length - 3} more</span>}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {held?.more && <p class="muted small">More than {HELD_LIMIT} jobs are held; the counts above cover the newest {HELD_LIMIT}.</p>}
    </>
  );
}
