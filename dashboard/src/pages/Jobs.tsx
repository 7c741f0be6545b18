import { useEffect, useState } from 'preact/hooks';
import type { JobStatus } from '../../../shared/statuses.js';
import { CANCELLABLE, RETRYABLE, type BulkOutcome, cancelJobs, countMatching, describe, jobsText, moveMatching, retryJobs, statusesFor } from '../actions.js';
import { api, refusalOf } from '../api.js';
import { Confirm, type ConfirmRequest } from '../components/Confirm.js';
import { JobFilterForm } from '../components/JobFilterForm.js';
import { Problem } from '../components/Problem.js';
import { Status } from '../components/Status.js';
import { Time } from '../components/Time.js';
import { clip } from '../format.js';
import { apiFilterOf, filtersOf, hrefOf, statusesOf, type Filters } from '../jobFilters.js';
import { useLive } from '../live.js';
import { useQueues } from '../stats.js';
import { Link, navigate } from '../router.js';

const PAGE_SIZE = 50;

/** How many "older" pages deep this page is, so "newer" can go back. */
const depth = (): number => ((history.state as { jobsDepth?: number } | null)?.jobsDepth ?? 0);

/**
 * Jobs newest first, filtered by queue, type, status, error text and time
 * ranges (kept in the URL), with cursor pages; retry/cancel of the ticked jobs
 * or of every job matching the filters, each after a confirmation with the count.
 */
export function Jobs({ query }: { query: URLSearchParams }) {
  const filters = filtersOf(query);
  const key = hrefOf(filters);
  const { rows } = useQueues(false);
  // Not live: a list that reorders under the pointer while jobs are being chosen would be worse than a Refresh button.
  const { data: page, failure, reload } = useLive(
    `jobs:${key}`,
    () =>
      api.jobs.list.query({
        ...apiFilterOf(filters),
        status: filters.status ? (statusesOf(filters) as JobStatus[]) : undefined,
        cursor: filters.cursor || undefined,
        limit: PAGE_SIZE,
      }),
    { live: false },
  );
  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set());
  const [confirm, setConfirm] = useState<ConfirmRequest | null>(null);
  const [notice, setNoticeText] = useState<string | null>(null);
  // Per job, why the server refused it: the last selection's answer.
  const [refused, setRefused] = useState<BulkOutcome['refused']>([]);
  const setNotice = (text: string | null, items: BulkOutcome['refused'] = []) => {
    setNoticeText(text);
    setRefused(items);
  };
  const [busy, setBusy] = useState(false);

  // Keep only the selected jobs still on the page.
  useEffect(() => {
    if (page) setSelected((was) => new Set(page.jobs.filter((j) => was.has(j.id)).map((j) => j.id)));
  }, [page]);
  useEffect(() => setSelected(new Set()), [key]);

  const change = (name: keyof Filters, value: string) => navigate(hrefOf({ ...filters, [name]: value, cursor: '' }), { focus: false });
  const refresh = () => void reload();
  const jobs = page?.jobs ?? [];
  const chosen = jobs.filter((j) => selected.has(j.id));
  const toggle = (id: string) =>
    setSelected((was) => {
      const next = new Set(was);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      return next;
    });
  const allOnPage = jobs.length > 0 && chosen.length === jobs.length;

  // Buttons are not disabled while busy (a disabled button drops the keyboard focus): the actions ignore presses instead.
  const run = async (verb: string, ids: readonly string[], action: typeof retryJobs) => {
    if (busy) return;
    setBusy(true);
    setNotice(null);
    const outcome = await action(ids);
    setBusy(false);
    setNotice(describe(verb, outcome), outcome.refused);
    refresh();
  };
  /** Every job matching the filters (not only this page): a dry run counts them for the confirmation, then one jobs.retryMany / jobs.cancelMany moves them. */
  const askMatching = async (kind: 'retry' | 'cancel') => {
    if (busy) return;
    const statuses = statusesFor(kind, statusesOf(filters));
    const verb = kind === 'retry' ? 'Retry' : 'Cancel';
    if (statuses.length === 0) {
      setNotice(`No job with the status chosen can be ${kind === 'retry' ? 'retried (only failed and cancelled ones)' : 'cancelled (only pending, claimed and processing ones)'}.`);
      return;
    }
    setBusy(true);
    setNotice(null);
    let counted: { matched: number; more: boolean };
    try {
      counted = await countMatching(kind, apiFilterOf(filters), statuses);
    } catch (error) {
      const refused = refusalOf(error);
      setNotice(`The server refused: ${refused.message} (${refused.code})`);
      return;
    } finally {
      setBusy(false);
    }
    if (counted.matched === 0) {
      setNotice(`No ${statuses.join(' or ')} job matches these filters: nothing to ${kind}.`);
      return;
    }
    const text = `${counted.more ? 'the first ' : ''}${jobsText(counted.matched)}`;
    const run = async () => {
      setBusy(true);
      try {
        setNotice(await moveMatching(kind, apiFilterOf(filters), statuses));
      } catch (error) {
        const refused = refusalOf(error);
        setNotice(`The server refused: ${refused.message} (${refused.code})`);
      } finally {
        setBusy(false);
      }
      refresh();
    };
    setConfirm({
      title: `${verb} ${text} matching these filters?`,
      body: (
        <p>
          {counted.more ? `More than ${jobsText(counted.matched)} match; one call takes at most that many. ` : ''}
          Every {statuses.join(', ')} job matching the filters above, on every page of the list, not only the ones ticked.
          {kind === 'retry' ? ' They go back to pending with a fresh retry budget.' : ' Running handlers are asked to stop (their AbortSignal fires).'}
        </p>
      ),
      confirmLabel: `${verb} ${jobsText(counted.matched)}`,
      danger: kind === 'cancel',
      onConfirm: () => void run(),
    });
  };

  const ask = (kind: 'retry' | 'cancel', ids: readonly string[]) => {
    if (busy) return;
    const n = ids.length;
    const jobsText = `${n} job${n === 1 ? '' : 's'}`;
    setConfirm(
      kind === 'retry'
        ? {
            title: `Retry ${jobsText}?`,
            body: <p>Failed and cancelled jobs go back to pending with a fresh retry budget; the server refuses the others and says why.</p>,
            confirmLabel: `Retry ${jobsText}`,
            onConfirm: () => void run('Retried', ids, retryJobs),
          }
        : {
            title: `Cancel ${jobsText}?`,
            body: <p>Pending jobs will not run; running handlers are asked to stop (their AbortSignal fires). This cannot be undone, but a cancelled job can be retried.</p>,
            confirmLabel: `Cancel ${jobsText}`,
            danger: true,
            onConfirm: () => void run('Cancelled', ids, cancelJobs),
          },
    );
  };

  const queues = [...new Set([...rows.map((r) => r.queue), ...(filters.queue ? [filters.queue] : [])])].sort();
  const types = [...new Set([...rows.flatMap((r) => r.types), ...(filters.type ? [filters.type] : [])])].sort();

  return (
    <>
      <h1 tabIndex={-1}>Jobs</h1>
      <JobFilterForm filters={filters} queues={queues} types={types} onChange={change}>
        {/* Beside the filters they act on; Refresh stays last, so Tab goes from it to the list. */}
        <div class="bulk-all" role="group" aria-label="Every job matching the filters">
          <button type="button" aria-disabled={busy ? 'true' : undefined} onClick={() => void askMatching('retry')}>
            Retry every match…
          </button>
          <button type="button" class="danger" aria-disabled={busy ? 'true' : undefined} onClick={() => void askMatching('cancel')}>
            Cancel every match…
          </button>
        </div>
        <button type="button" onClick={refresh}>
          Refresh
        </button>
      </JobFilterForm>

      <div class="bulk" role="toolbar" aria-label="Selected jobs">
        <span data-testid="selected-count">{chosen.length} selected</span>
        <button type="button" disabled={chosen.length === 0} aria-disabled={busy ? 'true' : undefined} onClick={() => ask('retry', chosen.map((j) => j.id))}>
          Retry selected ({chosen.length})
        </button>
        <button type="button" class="danger" disabled={chosen.length === 0} aria-disabled={busy ? 'true' : undefined} onClick={() => ask('cancel', chosen.map((j) => j.id))}>
          Cancel selected ({chosen.length})
        </button>
      </div>
      <p role="status" class="notice" data-testid="notice">
        {busy ? 'Working…' : notice}
      </p>
      {!busy && refused.length > 0 && (
        <ul class="refused-items" data-testid="refused" aria-label="Jobs the server refused">
          {refused.map((r) => (
            <li key={r.id} data-job={r.id}>
              <Link href={`/jobs/${r.id}`} class="mono">
                {r.id}
              </Link>
              : {r.message} <span class="muted">({r.code})</span>
            </li>
          ))}
        </ul>
      )}
      <Problem failure={failure} what="list jobs" />

      {page && jobs.length === 0 && <p>No jobs match these filters.</p>}
      {jobs.length > 0 && (
        <div class="table-wrap">
          <table class="cards jobs" data-testid="jobs">
            <caption class="visually-hidden">Jobs, newest first</caption>
            <thead>
              <tr>
                <th scope="col" class="check">
                  <input
                    type="checkbox"
                    aria-label="Select every job on this page"
                    checked={allOnPage}
                    onChange={() => setSelected(allOnPage ? new Set() : new Set(jobs.map((j) => j.id)))}
                  />
                </th>
                <th scope="col">Job</th>
                <th scope="col">Status</th>
                <th scope="col">Queue</th>
                <th scope="col" class="num">
                  Attempt
                </th>
                <th scope="col">Created</th>
                <th scope="col">Last error</th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {jobs.map((job) => (
                <tr key={job.id} data-job={job.id} data-status={job.status} class={selected.has(job.id) ? 'selected' : undefined}>
                  <td class="check">
                    <input type="checkbox" aria-label={`Select job ${job.id}`} checked={selected.has(job.id)} onChange={() => toggle(job.id)} />
                  </td>
                  <td data-label="Job">
                    <Link href={`/jobs/${job.id}`} class="mono">
                      {job.id}
                    </Link>
                    <div class="small">{job.type}</div>
                  </td>
                  <td data-label="Status">
                    <Status status={job.status} />
                  </td>
                  <td data-label="Queue">{job.queue}</td>
                  <td class="num" data-label="Attempt">
                    {job.attempt}
                  </td>
                  <td data-label="Created">
                    <Time at={job.createdAt} />
                  </td>
                  <td data-label="Last error" class="error-cell" title={job.error ?? undefined}>
                    {job.error ? clip(job.error, 90) : <span class="muted">—</span>}
                  </td>
                  <td class="row-actions">
                    {RETRYABLE.has(job.status) && (
                      <button type="button" class="small" aria-disabled={busy ? 'true' : undefined} onClick={() => void run('Retried', [job.id], retryJobs)} aria-label={`Retry job ${job.id}`}>
                        Retry
                      </button>
                    )}
                    {CANCELLABLE.has(job.status) && (
                      <button type="button" class="small danger" aria-disabled={busy ? 'true' : undefined} onClick={() => ask('cancel', [job.id])} aria-label={`Cancel job ${job.id}`}>
                        Cancel
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <nav class="pager" aria-label="Pages">
        {depth() > 0 && (
          <button type="button" onClick={() => history.back()}>
            ← Newer
          </button>
        )}
        {filters.cursor && <Link href={hrefOf({ ...filters, cursor: '' })}>Newest</Link>}
        {page?.nextCursor && (
          <Link href={hrefOf({ ...filters, cursor: page.nextCursor })} state={{ jobsDepth: depth() + 1 }}>
            Older →
          </Link>
        )}
      </nav>
      <Confirm request={confirm} onClose={() => setConfirm(null)} />
    </>
  );
}
