import type { ComponentChildren } from 'preact';
import type { Filters } from '../jobFilters.js';

const STATUS_CHOICES: Array<{ value: string; label: string }> = [
  { value: '', label: 'any' },
  { value: 'pending', label: 'pending' },
  { value: 'claimed,processing', label: 'held (claimed or processing)' },
  { value: 'claimed', label: 'claimed' },
  { value: 'processing', label: 'processing' },
  { value: 'completed', label: 'completed' },
  { value: 'failed', label: 'failed' },
  { value: 'cancelled', label: 'cancelled' },
];

/**
 * The jobs list's filter form: queue, type, status, error text, created and
 * finished ranges. Each control reports its new value when it is committed
 * (a choice, Enter or leaving a field), and the page puts it in the URL.
 * `children` go last (the actions on the filtered jobs).
 */
export function JobFilterForm({ filters, queues, types, onChange: change, children }: { filters: Filters; queues: readonly string[]; types: readonly string[]; onChange(name: keyof Filters, value: string): void; children?: ComponentChildren }) {
  return (
    <form class="filters" role="search" aria-label="Filter jobs" onSubmit={(e) => e.preventDefault()}>
      <label>
        Queue
        <select value={filters.queue} onChange={(e) => change('queue', e.currentTarget.value)}>
          <option value="">any</option>
          {queues.map((q) => (
            <option key={q} value={q}>
              {q}
            </option>
          ))}
        </select>
      </label>
      <label>
        Type
        <select value={filters.type} onChange={(e) => change('type', e.currentTarget.value)}>
          <option value="">any</option>
          {types.map((t) => (
            <option key={t} value={t}>
              {t}
            </option>
          ))}
        </select>
      </label>
      <label>
        Status
        <select value={filters.status} onChange={(e) => change('status', e.currentTarget.value)}>
          {STATUS_CHOICES.map((s) => (
            <option key={s.value} value={s.value}>
              {s.label}
            </option>
          ))}
        </select>
      </label>
      <label>
        Error contains
        <input type="search" value={filters.error} placeholder="any text" maxLength={1000} onChange={(e) => change('error', e.currentTarget.value.trim())} />
      </label>
      <fieldset class="range">
        <legend>Created (local time)</legend>
        <label>
          from
          <input type="datetime-local" step={1} value={filters.createdAfter} onChange={(e) => change('createdAfter', e.currentTarget.value)} />
        </label>
        <label>
          before
          <input type="datetime-local" step={1} value={filters.createdBefore} onChange={(e) => change('createdBefore', e.currentTarget.value)} />
        </label>
      </fieldset>
      <fieldset class="range">
        <legend>Finished (local time)</legend>
        <label>
          from
          <input type="datetime-local" step={1} value={filters.finishedAfter} onChange={(e) => change('finishedAfter', e.currentTarget.value)} />
        </label>
        <label>
          before
          <input type="datetime-local" step={1} value={filters.finishedBefore} onChange={(e) => change('finishedBefore', e.currentTarget.value)} />
        </label>
      </fieldset>
      {children}
    </form>
  );
}
