import { useRef, useState } from 'preact/hooks';
import type { QueueSettings, QueueView } from '../../../shared/queues.js';
import type { JobStatus } from '../../../shared/statuses.js';
import { useAction } from '../actions.js';
import { api, type Stats } from '../api.js';
import { LimitsForm } from '../components/LimitsForm.js';
import { Problem } from '../components/Problem.js';
import { Schedules } from '../components/Schedules.js';
import { concurrencyText, count, rateText } from '../format.js';
import { queuesLive, reloadQueues, useQueues } from '../stats.js';
import { Link } from '../router.js';

const STATUSES: readonly JobStatus[] = ['pending', 'claimed', 'processing', 'completed', 'failed', 'cancelled'];

/** Days kept, in words. */
const keptText = (days: number | null): string => (days === null ? "the server's default" : days === 0 ? 'forever' : `${count(days)} day${days === 1 ? '' : 's'}`);

function limitsSaved(queue: string, s: QueueSettings): string {
  return (
    `Saved settings of ${queue}: concurrency ${concurrencyText(s.concurrency)}, rate ${rateText(s.rateLimit)}, ` +
    `per key ${concurrencyText(s.keyConcurrency)}, finished jobs kept ${keptText(s.retentionDays)}, failed kept ${keptText(s.failedRetentionDays)}.`
  );
}

/** One queue: paused or not (and the button to change it), its limits (and a form to change them), its jobs by type and status. */
function QueueCard({ queue, lines }: { queue: QueueView; lines: Stats['counts'] }) {
  const { busy, answer, run, report } = useAction();
  const [editing, setEditing] = useState(false);
  // What the last save answered, until a reading of the queues after it arrives: the card and a
  // form opened meanwhile show it, so a second edit never sends the settings from before the first.
  const [saved, setSaved] = useState<QueueSettings | null>(null);
  const settings: QueueView = saved ? { ...queue, ...saved, paused: queue.paused } : queue;
  const editButton = useRef<HTMLButtonElement>(null);
  const types = [...new Set(lines.map((l) => l.type))];
  const name = queue.name;
  const headingId = `q-${name}`;
  const heldNow = queue.counts.claimed + queue.counts.processing;

  const togglePaused = () =>
    run(async () => {
      const now = queue.paused ? await api.queues.resume.mutate({ queue: name }) : await api.queues.pause.mutate({ queue: name });
      await reloadQueues();
      return now.paused ? `Paused ${name}: no claim takes its jobs until it is resumed; enqueues still go in.` : `Resumed ${name}: claims take its jobs again.`;
    });

  const done = (saved: QueueSettings | null) => {
    setEditing(false);
    // Back to the button that opened the form.
    requestAnimationFrame(() => editButton.current?.focus());
    // Not run(): a reload still under way from an earlier save must not swallow this one's.
    if (!saved) return;
    setSaved(saved);
    // Only the reading after the latest save lets go of it (an earlier save's may predate it); a
    // failed reading keeps it (the last thing the server said) and shows why it failed.
    void report(() => reloadQueues().then(() => limitsSaved(name, saved))).then((latest) => {
      if (latest && !queuesLive.get().failure) setSaved(null);
    });
  };

  return (
    <section aria-labelledby={headingId} class="queue card" data-queue={name}>
      <div class="queue-head">
        <h3 id={headingId}>
          <Link href={`/jobs?queue=${encodeURIComponent(name)}`}>{name}</Link>
        </h3>
        <span class={`badge ${queue.paused ? 'paused' : 'running'}`} data-testid={`state-${name}`}>
          {queue.paused ? 'paused' : 'running'}
        </span>
        <div class="actions">
          <button type="button" class={queue.paused ? 'primary' : undefined} aria-disabled={busy ? 'true' : undefined} onClick={() => void togglePaused()}>
            {queue.paused ? 'Resume' : 'Pause'}
            <span class="visually-hidden"> queue {name}</span>
          </button>
        </div>
      </div>
      <dl class="fields compact" data-testid={`limits-${name}`}>
        <dt>Concurrency</dt>
        <dd>
          <span data-testid={`concurrency-${name}`}>{concurrencyText(settings.concurrency)}</span>
          <span class="muted"> ({count(heldNow)} held now)</span>
        </dd>
        <dt>Rate limit</dt>
        <dd data-testid={`rate-${name}`}>{rateText(settings.rateLimit)}</dd>
        <dt>Per concurrency key</dt>
        <dd data-testid={`key-concurrency-${name}`}>{concurrencyText(settings.keyConcurrency)}</dd>
        <dt>Completed and cancelled kept</dt>
        <dd data-testid={`retention-${name}`}>{keptText(settings.retentionDays)}</dd>
        <dt>Failed kept</dt>
        <dd data-testid={`failed-retention-${name}`}>{keptText(settings.failedRetentionDays)}</dd>
      </dl>
      {editing ? (
        <LimitsForm queue={name} settings={settings} onDone={done} />
      ) : (
        <p>
          <button type="button" ref={editButton} onClick={() => setEditing(true)}>
            Edit limits<span class="visually-hidden"> of queue {name}</span>
          </button>
        </p>
      )}
      <p role="status" class={`notice${answer && !answer.ok ? ' refused' : ''}`} data-testid={`answer-${name}`}>
        {answer?.text}
      </p>
      {types.length > 0 ? (
        <div class="table-wrap">
          <table class="cards">
            <caption class="visually-hidden">Jobs of queue {name} by type and status</caption>
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
                    <Link href={`/jobs?queue=${encodeURIComponent(name)}&type=${encodeURIComponent(type)}`}>{type}</Link>
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
      ) : (
        <p class="muted">No jobs in this queue.</p>
      )}
    </section>
  );
}

/** Every queue with pause/resume and its limits, and every cron schedule with its next runs. */
export function Queues() {
  const { stats, queues, failure } = useQueues(true);
  return (
    <>
      <h1 tabIndex={-1}>Queues and schedules</h1>
      <p class="muted">
        Pausing a queue stops claims (over HTTP and <code>claim_tasks</code>) from taking its jobs; enqueues still go in. Limits hold across every worker
        and server.
      </p>
      <section aria-labelledby="h-queues">
        <h2 id="h-queues">Queues</h2>
        <Problem failure={failure} what="read the queues" />
        {stats && queues.length === 0 && <p>No queues yet: a queue appears with its first job, or once it is configured.</p>}
        {queues.map((queue) => (
          <QueueCard key={queue.name} queue={queue} lines={(stats?.counts ?? []).filter((c) => c.queue === queue.name)} />
        ))}
      </section>
      <Schedules />
    </>
  );
}
