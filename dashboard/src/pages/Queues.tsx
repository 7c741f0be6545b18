import type { JobStatus } from '../../../shared/statuses.js';
import { Problem } from '../components/Problem.js';
import { count } from '../format.js';
import { useLiveStats } from '../live.js';
import { Link } from '../router.js';

const STATUSES: readonly JobStatus[] = ['pending', 'claimed', 'processing', 'completed', 'failed', 'cancelled'];

/** Each queue by job type and status; where pause/resume, limits and schedules will go. */
export function Queues() {
  const { stats, rows, failure } = useLiveStats(true);
  return (
    <>
      <h1 tabIndex={-1}>Queues and schedules</h1>
      <Problem failure={failure} what="read the queues" />
      {stats && rows.length === 0 && <p>No queues yet: a queue appears with its first job.</p>}
      {rows.map((row) => {
        const lines = (stats?.counts ?? []).filter((c) => c.queue === row.queue);
        const types = [...new Set(lines.map((l) => l.type))];
        return (
          <section key={row.queue} aria-labelledby={`q-${row.queue}`} class="queue">
            <h2 id={`q-${row.queue}`}>
              <Link href={`/jobs?queue=${encodeURIComponent(row.queue)}`}>{row.queue}</Link>
            </h2>
            {/* Pause/resume buttons and the concurrency and rate limits go here once queues.pause/resume/configure/list exist (flow-control issue). */}
            <div class="table-wrap">
              <table class="cards">
                <caption class="visually-hidden">Jobs of queue {row.queue} by type and status</caption>
                <thead>
                  <tr>
                    <th scope="col">Type</th>
                    {STATUSES.map((s) => (
                      <th key={s} scope="col" class="num">
                        {s}
                      </th>
                    ))}
                  </tr>
                </thead>
                <tbody>
                  {types.map((type) => (
                    <tr key={type}>
                      <th scope="row" data-label="Type">
                        <Link href={`/jobs?queue=${encodeURIComponent(row.queue)}&type=${encodeURIComponent(type)}`}>{type}</Link>
                      </th>
                      {STATUSES.map((s) => (
                        <td key={s} class="num" data-label={s}>
                          {count(lines.find((l) => l.type === type && l.status === s)?.count ?? 0)}
                        </td>
                      ))}
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </section>
        );
      })}
      <section aria-labelledby="h-later" class="later">
        <h2 id="h-later">Not yet available</h2>
        <ul>
          <li>Pause and resume a queue, and its concurrency and rate limits: wait for queues.pause, queues.resume, queues.configure and queues.list.</li>
          <li>Cron schedules with their next run times, and pausing a schedule: wait for schedules.list, schedules.pause and schedules.resume.</li>
        </ul>
      </section>
    </>
  );
}
