/**
 * The jobs list's filters: as the URL keeps them (so a filtered list can be
 * linked, and Back returns to it), and as jobs.list, jobs.retryMany and
 * jobs.cancelMany take them (one filter, so "every match" moves exactly what
 * the list shows).
 */

/** The filters as the URL keeps them (times as the inputs give them: local date and time, `2026-12-01T15:30`). */
export interface Filters {
  queue: string;
  type: string;
  status: string;
  error: string;
  createdAfter: string;
  createdBefore: string;
  finishedAfter: string;
  finishedBefore: string;
  cursor: string;
}

const FILTER_NAMES = ['queue', 'type', 'status', 'error', 'createdAfter', 'createdBefore', 'finishedAfter', 'finishedBefore', 'cursor'] as const;

/** The filters in a query string. */
export const filtersOf = (query: URLSearchParams): Filters =>
  Object.fromEntries(FILTER_NAMES.map((name) => [name, query.get(name) ?? ''])) as unknown as Filters;

/** A local date and time from an input, as a Date; undefined when blank or not a time. */
function timeOf(value: string): Date | undefined {
  if (!value) return undefined;
  const at = new Date(value);
  return Number.isNaN(at.getTime()) ? undefined : at;
}

/** The filter as jobs.list, jobs.retryMany and jobs.cancelMany take it (without status and cursor). */
export function apiFilterOf(filters: Filters) {
  return {
    queue: filters.queue || undefined,
    type: filters.type || undefined,
    errorContains: filters.error || undefined,
    createdAfter: timeOf(filters.createdAfter),
    createdBefore: timeOf(filters.createdBefore),
    finishedAfter: timeOf(filters.finishedAfter),
    finishedBefore: timeOf(filters.finishedBefore),
  };
}

/** The statuses chosen (none: any). */
export const statusesOf = (filters: Filters): string[] => (filters.status ? filters.status.split(',') : []);

/** The jobs page's URL for these filters. */
export function hrefOf(filters: Filters): string {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(filters)) if (value) query.set(name, value);
  const text = query.toString();
  return text ? `/jobs?${text}` : '/jobs';
}

