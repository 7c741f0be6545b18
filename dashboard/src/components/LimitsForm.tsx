import { useEffect, useRef, useState } from 'preact/hooks';
import type { QueueSettings } from '../../../shared/queues.js';
import { api, report, type Failure } from '../api.js';

type Field = 'concurrency' | 'rateMax' | 'ratePeriod' | 'keyConcurrency' | 'retentionDays' | 'failedRetentionDays';

/** Which field of the form a path of the server's input issues is about (queues.configure's input). */
const FIELD_OF_PATH: Record<string, Field> = {
  concurrency: 'concurrency',
  rateLimit: 'rateMax',
  'rateLimit.max': 'rateMax',
  'rateLimit.periodMs': 'ratePeriod',
  keyConcurrency: 'keyConcurrency',
  retentionDays: 'retentionDays',
  failedRetentionDays: 'failedRetentionDays',
};

const text = (n: number | null | undefined): string => (n === null || n === undefined ? '' : String(n));

/** Blank is "no limit" (null); anything else goes to the server as a number, which checks it. */
const numberOf = (value: string): number | null => (value.trim() === '' ? null : Number(value.trim()));

/**
 * Edits a queue's concurrency, rate limit, per-key concurrency and retention
 * with queues.configure. The server validates (limits from 1 to 1,000,000,
 * a period up to a day, per-key up to 10,000, retention 0 to 36,500 days):
 * what it refuses is shown beside the field it names, and nothing changes.
 */
export function LimitsForm({ queue, settings, onDone }: { queue: string; settings: QueueSettings; onDone(saved: QueueSettings | null): void }) {
  const [draft, setDraft] = useState<Record<Field, string>>({
    concurrency: text(settings.concurrency),
    rateMax: text(settings.rateLimit?.max),
    ratePeriod: text(settings.rateLimit?.periodMs),
    keyConcurrency: text(settings.keyConcurrency),
    retentionDays: text(settings.retentionDays),
    failedRetentionDays: text(settings.failedRetentionDays),
  });
  const [problems, setProblems] = useState<Partial<Record<Field, string>>>({});
  const [failure, setFailure] = useState<Failure | null>(null);
  const [busy, setBusy] = useState(false);
  const form = useRef<HTMLFormElement>(null);
  const id = (field: Field) => `limits-${queue}-${field}`;
  // Opened from the keyboard, the form starts at its first field.
  useEffect(() => form.current?.querySelector<HTMLInputElement>('input')?.focus(), []);

  const focusFirstProblem = () =>
    requestAnimationFrame(() => form.current?.querySelector<HTMLInputElement>('[aria-invalid="true"]')?.focus());

  const submit = async (event: Event) => {
    event.preventDefault();
    setFailure(null);
    const max = numberOf(draft.rateMax);
    const periodMs = numberOf(draft.ratePeriod);
    // The one rule the API's shape cannot carry: a rate limit is both numbers or none.
    if ((max === null) !== (periodMs === null)) {
      setProblems(max === null ? { rateMax: 'Give the number of claims too, or clear both.' } : { ratePeriod: 'Give the period too, or clear both.' });
      return focusFirstProblem();
    }
    setProblems({});
    setBusy(true);
    try {
      const saved = await api.queues.configure.mutate({
        queue,
        concurrency: numberOf(draft.concurrency),
        rateLimit: max === null || periodMs === null ? null : { max, periodMs },
        keyConcurrency: numberOf(draft.keyConcurrency),
        retentionDays: numberOf(draft.retentionDays),
        failedRetentionDays: numberOf(draft.failedRetentionDays),
      });
      onDone(saved);
    } catch (error) {
      const refused = report(error);
      const byField: Partial<Record<Field, string>> = {};
      let unplaced = false;
      for (const issue of refused.issues ?? []) {
        const field = FIELD_OF_PATH[issue.path];
        if (field && !byField[field]) byField[field] = issue.message;
        else if (!field) unplaced = true;
      }
      setProblems(byField);
      // Shown as a whole when no field carries it (not allowed, server down, ...).
      if (unplaced || Object.keys(byField).length === 0) setFailure(refused);
      focusFirstProblem();
    } finally {
      setBusy(false);
    }
  };

  const input = (field: Field, label: string, hint: string) => (
    <div class="field">
      <label for={id(field)}>{label}</label>
      <input
        id={id(field)}
        type="text"
        inputMode="numeric"
        autocomplete="off"
        value={draft[field]}
        placeholder="none"
        aria-invalid={problems[field] ? 'true' : undefined}
        aria-describedby={`${id(field)}-hint${problems[field] ? ` ${id(field)}-problem` : ''}`}
        onInput={(e) => setDraft({ ...draft, [field]: e.currentTarget.value })}
      />
      <span id={`${id(field)}-hint`} class="muted small">
        {hint}
      </span>
      {problems[field] && (
        <span id={`${id(field)}-problem`} class="field-problem" data-testid={`problem-${field}`}>
          {problems[field]}
        </span>
      )}
    </div>
  );

  return (
    <form ref={form} class="limits-form" onSubmit={submit} noValidate aria-label={`Limits of queue ${queue}`}>
      {input('concurrency', 'Concurrency', 'Most jobs held at once; blank: no limit.')}
      <fieldset>
        <legend>Rate limit</legend>
        {input('rateMax', 'Claims', 'At most this many claims…')}
        {input('ratePeriod', 'Per (ms)', '…in each window of this many ms; both blank: no limit.')}
      </fieldset>
      {input('keyConcurrency', 'Per concurrency key', 'Most jobs held at once per concurrencyKey; blank: no limit.')}
      <fieldset>
        <legend>Retention (days)</legend>
        {input('retentionDays', 'Completed and cancelled', "Kept this many days; 0: forever; blank: the server's default.")}
        {input('failedRetentionDays', 'Failed', "Kept this many days; 0: forever; blank: the server's default.")}
      </fieldset>
      {failure && (
        <p class="problem" role="alert">
          The server refused: {failure.message} <span class="muted">({failure.code})</span>
        </p>
      )}
      {Object.keys(problems).length > 0 && (
        <p class="visually-hidden" role="alert">
          {Object.values(problems).join(' ')}
        </p>
      )}
      <div class="actions">
        <button type="button" onClick={() => onDone(null)} disabled={busy}>
          Cancel
        </button>
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Saving…' : 'Save limits'}
        </button>
      </div>
    </form>
  );
}
