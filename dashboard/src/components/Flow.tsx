import type { ChildView, JobView } from '../../../shared/api.js';
import { clip } from '../format.js';
import { Link } from '../router.js';
import { Status } from './Status.js';
import { Time } from './Time.js';

/** The job's place in a flow: its parent (a link), and its children with their statuses (jobs.children, first page). */
export function Flow({ job, children, more }: { job: JobView; children: readonly ChildView[]; more: boolean }) {
  if (!job.parentId && children.length === 0) return <p class="muted">Not part of a flow.</p>;
  const byStatus = new Map<string, number>();
  for (const c of children) byStatus.set(c.status, (byStatus.get(c.status) ?? 0) + 1);
  return (
    <>
      {job.parentId && (
        <p data-testid="flow-parent">
          Child of{' '}
          <Link href={`/jobs/${job.parentId}`} class="mono">
            {job.parentId}
          </Link>
          , which runs once its children are finished.
        </p>
      )}
      {children.length > 0 && (
        <>
          <p>
            {children.length}
            {more ? '+' : ''} child{children.length === 1 && !more ? '' : 'ren'}:{' '}
            {[...byStatus].map(([status, n]) => `${n} ${status}`).join(', ')}.
          </p>
          <div class="table-wrap">
            <table class="cards" data-testid="children">
              <caption class="visually-hidden">Children of job {job.id}, in the order they were enqueued</caption>
              <thead>
                <tr>
                  <th scope="col">Child</th>
                  <th scope="col">Status</th>
                  <th scope="col">Queue</th>
                  <th scope="col" class="num">
                    Attempt
                  </th>
                  <th scope="col">Finished</th>
                  <th scope="col">Error</th>
                </tr>
              </thead>
              <tbody>
                {children.map((c) => (
                  <tr key={c.id} data-child={c.id} data-status={c.status}>
                    <td data-label="Child">
                      <Link href={`/jobs/${c.id}`} class="mono">
                        {c.id}
                      </Link>
                      <div class="small">{c.type}</div>
                    </td>
                    <td data-label="Status">
                      <Status status={c.status} />
                    </td>
                    <td data-label="Queue">{c.queue}</td>
                    <td class="num" data-label="Attempt">
                      {c.attempt}
                    </td>
                    <td data-label="Finished">
                      <Time at={c.completedAt ?? c.failedAt} />
                    </td>
                    <td data-label="Error" class="error-cell" title={c.error ?? undefined}>
                      {c.error ? clip(c.error, 90) : <span class="muted">—</span>}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {more && (
            <p class="muted small">The first {children.length} children are shown; jobs.children pages through the rest.</p>
          )}
        </>
      )}
    </>
  );
}
