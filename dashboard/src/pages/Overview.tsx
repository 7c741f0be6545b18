import { ThroughputChart } from '../components/Chart.js';
import { Problem } from '../components/Problem.js';
import { Time } from '../components/Time.js';
import { concurrencyText, count, duration, rateText } from '../format.js';
import { POLL_MS, source, type SourceState } from '../live.js';
import { useQueues, type QueueRow } from '../stats.js';
import { history } from '../throughput.js';
import { Link } from '../router.js';
import { useStore } from '../store.js';

const COLUMNS = [
  { status: 'pending', label: 'Pending' },
  { status: 'held', label: 'Held' },
  { status: 'completed', label: 'Completed' },
  { status: 'failed', label: 'Failed' },
  { status: 'cancelled', label: 'Cancelled' },
] as const;

function jobsHref(queue: string, status: (typeof COLUMNS)[number]['status']): string {
  const query = new URLSearchParams({ queue, status: status === 'held' ? 'claimed,processing' : status });
  return `/jobs?${query}`;
}

function OldestPending({ row }: { row: QueueRow }) {
  if (!row.oldestPending || row.counts.pending === 0) return <span class="muted">—</span>;
  const waited = Date.now() - row.oldestPending.getTime();
  // Delayed jobs are pending too; when every one is still in the future, nothing is waiting yet.
  if (waited < 0) return <span title={row.oldestPending.toLocaleString()}>next due in {duration(waited)}</span>;
  return <span title={row.oldestPending.toLocaleString()}>{duration(waited)}</span>;
}

function Limits({ row }: { row: QueueRow }) {
  const s = row.settings;
  if (!s || (s.concurrency === null && s.rateLimit === null)) return <span class="muted">none</span>;
  return (
    <>
      {s.concurrency !== null && <div>{concurrencyText(s.concurrency)}</div>}
      {s.rateLimit !== null && <div>{rateText(s.rateLimit)}</div>}
    </>
  );
}

/** How the page stays current, in words. */
function liveText(state: SourceState): string {
  switch (state.mode) {
    case 'events':
      return 'Live: updated as jobs move (events stream).';
    case 'polling':
      return `Live: read every ${POLL_MS / 1000} s (${state.reason}).`;
    default:
      return 'Live: connecting to the events stream…';
  }
}

/** One row per queue with its counts, paused state and limits, updating live, and the throughput chart. */
export function Overview() {
  const { rows, failure, updatedAt, stats } = useQueues(true);
  const finished = useStore(history);
  const live = useStore(source);
  return (
    <>
      <h1 tabIndex={-1}>Overview</h1>
      <p class="muted" aria-live="off" data-testid="live-state" data-mode={live.mode}>
        {liveText(live)} Updated <Time at={updatedAt} empty="not yet" />.
      </p>
      <Problem failure={failure} what="read the queue counts" />
      {stats && rows.length === 0 && <p>No jobs yet. Jobs appear here once a producer enqueues them.</p>}
      {rows.length > 0 && (
        <div class="table-wrap">
          <table class="cards" data-testid="overview">
            <caption class="visually-hidden">Jobs per queue and status</caption>
            <thead>
              <tr>
                <th scope="col">Queue</th>
                {COLUMNS.map((c) => (
                  <th key={c.status} scope="col" class="num">
                    {c.label}
                  </th>
                ))}
                <th scope="col" class="num">
                  Oldest pending
                </th>
                <th scope="col">Limits</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((row) => (
                <tr key={row.queue} data-queue={row.queue}>
                  <th scope="row" data-label="Queue">
                    <Link href={`/jobs?queue=${encodeURIComponent(row.queue)}`}>{row.queue}</Link>
                    {row.settings?.paused && (
                      <>
                        {' '}
                        <span class="badge paused" data-testid={`paused-${row.queue}`}>
                          paused
                        </span>
                      </>
                    )}
                    <div class="muted small">{row.types.join(', ')}</div>
                  </th>
                  {COLUMNS.map((c) => {
                    const n = c.status === 'held' ? row.held : row.counts[c.status];
                    return (
                      <td key={c.status} class={`num${c.status === 'failed' && n > 0 ? ' bad' : ''}`} data-label={c.label} data-testid={`count-${row.queue}-${c.status}`}>
                        {n > 0 ? <Link href={jobsHref(row.queue, c.status)}>{count(n)}</Link> : '0'}
                      </td>
                    );
                  })}
                  <td class="num" data-label="Oldest pending">
                    <OldestPending row={row} />
                  </td>
                  <td data-label="Limits" class="small">
                    <Limits row={row} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <h2>Throughput, last 15 minutes</h2>
      <ThroughputChart history={finished} queues={rows.map((r) => r.queue)} exact={live.mode === 'events'} />
    </>
  );
}
