import { api } from '../api.js';
import { Problem } from '../components/Problem.js';
import { Time } from '../components/Time.js';
import { count } from '../format.js';
import { useLive } from '../live.js';
import { Link, navigate } from '../router.js';

const WINDOWS: Array<{ ms: number; label: string }> = [
  { ms: 60_000, label: 'last minute' },
  { ms: 300_000, label: 'last 5 minutes' },
  { ms: 900_000, label: 'last 15 minutes' },
  { ms: 3_600_000, label: 'last hour' },
];
const DEFAULT_WINDOW = 300_000;

/**
 * The workers seen lately (workers.list): those holding jobs now, and those
 * that completed one within the window, read from the jobs themselves.
 */
export function Workers({ query }: { query: URLSearchParams }) {
  const asked = Number(query.get('window'));
  const windowMs = WINDOWS.some((w) => w.ms === asked) ? asked : DEFAULT_WINDOW;
  const { data, failure } = useLive(`workers:${windowMs}`, () => api.workers.list.query({ windowMs }), { poll: true });
  const workers = data?.workers ?? [];
  return (
    <>
      <h1 tabIndex={-1}>Workers</h1>
      <p class="muted">
        Workers that hold jobs now or completed one lately, read from the jobs they claimed: skipq keeps no list of workers, so one that has claimed
        nothing, or whose jobs all failed, is not here. Last seen is its latest claim or heartbeat of a job it holds, or completion of one.
      </p>
      <form class="filters" onSubmit={(e) => e.preventDefault()} aria-label="Which workers">
        <label>
          Seen in the
          <select value={String(windowMs)} onChange={(e) => navigate(`/workers?window=${e.currentTarget.value}`, { replace: true, focus: false })}>
            {WINDOWS.map((w) => (
              <option key={w.ms} value={String(w.ms)}>
                {w.label}
              </option>
            ))}
          </select>
        </label>
      </form>
      <Problem failure={failure} what="read the workers" />
      {data && workers.length === 0 && <p>No worker seen in this window.</p>}
      {workers.length > 0 && (
        <div class="table-wrap">
          <table class="cards" data-testid="workers">
            <caption class="visually-hidden">Workers seen, most recently active first</caption>
            <thead>
              <tr>
                <th scope="col">Worker</th>
                <th scope="col" class="num">
                  Jobs held
                </th>
                <th scope="col" class="num">
                  Completed in window
                </th>
                <th scope="col">Queues</th>
                <th scope="col">Last seen</th>
                <th scope="col">Last claim</th>
                <th scope="col">Lease until</th>
                <th scope="col">Holds</th>
              </tr>
            </thead>
            <tbody>
              {workers.map((w) => (
                <tr key={w.workerId} data-worker={w.workerId}>
                  <th scope="row" data-label="Worker">
                    <span class="mono">{w.workerId}</span>
                  </th>
                  <td class="num" data-label="Jobs held">
                    {count(w.held)}
                  </td>
                  <td class="num" data-label="Completed in window">
                    {count(w.completed)}
                  </td>
                  <td data-label="Queues">{w.queues.join(', ')}</td>
                  <td data-label="Last seen">
                    <Time at={w.lastSeenAt} />
                  </td>
                  <td data-label="Last claim">
                    <Time at={w.lastClaimAt} />
                  </td>
                  <td data-label="Lease until">
                    <Time at={w.leaseExpiresAt} />
                  </td>
                  <td data-label="Holds">
                    {w.heldJobIds.length === 0 && <span class="muted">—</span>}
                    {w.heldJobIds.map((id) => (
                      <div key={id}>
                        <Link href={`/jobs/${id}`} class="mono small">
                          {id}
                        </Link>
                      </div>
                    ))}
                    {w.held > w.heldJobIds.length && <span class="muted small">and {count(w.held - w.heldJobIds.length)} more</span>}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {data?.truncated && <p class="muted small">Many jobs are held or were completed in this window: the server read a bounded number of them, so some workers may be missing and counts may be short.</p>}
    </>
  );
}
