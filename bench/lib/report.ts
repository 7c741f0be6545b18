// The results and targets tables (stdout and bench/RESULTS.md) and the report around them.
import { formatFigure as fmt } from './format.js';
import { median } from './stats.js';
import { evaluateTargets } from './targets.js';
import type { MachineInfo } from './machine.js';
import type { Measurement, Metric, Sizes, Workload } from '../workloads/types.js';
import type { SystemHost } from '../systems.js';

/** Every round of one workload on one system (or on PostgreSQL alone: system "postgres"). */
export interface Cell {
  rounds: Measurement[];
  /** Rounds that did not finish: "TIMEOUT: ..." or "ERROR: ...". */
  failures: string[];
}

/** Everything a report needs. */
export interface RunResults {
  workloads: Workload[];
  systems: SystemHost[];
  sizes: Sizes;
  rounds: number;
  cells: Map<string, Cell>;
}

export const cellKey = (workload: string, system: string): string => `${workload}|${system}`;


/** Every round's value of a metric in a cell; none when the cell is not valid (a failed round, a problem). */
function validRounds(cell: Cell | undefined, key: string): number[] {
  if (!cell || cell.failures.length > 0 || cell.rounds.some((r) => r.problems.length > 0)) return [];
  return cell.rounds.map((r) => r.values[key]).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
}

/** The median of a metric over a cell's rounds, or undefined when the cell is not valid. */
function validMedian(cell: Cell | undefined, key: string): number | undefined {
  const values = validRounds(cell, key);
  return values.length > 0 ? median(values) : undefined;
}

/** A Markdown table with padded columns (readable in a terminal too). */
function markdownTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cols: string[]): string => `| ${cols.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

function renderCell(cell: Cell | undefined, key: string): string {
  if (!cell) return '—';
  if (cell.failures.some((f) => f.startsWith('TIMEOUT'))) return 'TIMEOUT';
  if (cell.failures.length > 0) return 'ERROR';
  if (cell.rounds.some((r) => r.problems.length > 0)) return 'INVALID';
  const values = validRounds(cell, key);
  if (values.length === 0) return '—';
  if (values.length === 1) return fmt(values[0] as number);
  return `${fmt(median(values))} (${fmt(Math.min(...values))}–${fmt(Math.max(...values))})`;
}

function ratio(results: RunResults, workload: Workload, metric: Metric): string {
  const skipq = validMedian(results.cells.get(cellKey(workload.id, 'skipq')), metric.key);
  if (workload.id === 'W5') {
    const ceiling = validMedian(results.cells.get(cellKey('W5', 'postgres')), metric.key);
    const w3 = validMedian(results.cells.get(cellKey('W3', 'skipq')), 'rate');
    return ceiling && w3 ? `skipq W3 = ${Math.round((100 * w3) / ceiling)}% of it` : '—';
  }
  if (skipq === undefined) return '—';
  if (workload.id === 'W3-1M' && metric.key === 'rate') {
    const empty = validMedian(results.cells.get(cellKey('W3', 'skipq')), 'rate');
    return empty ? `${Math.round((100 * skipq) / empty)}% of W3 (target ≥ 80%)` : '—';
  }
  let best: { value: number; label: string } | undefined;
  for (const system of results.systems) {
    if (system.name === 'skipq') continue;
    const value = validMedian(results.cells.get(cellKey(workload.id, system.name)), metric.key);
    if (value === undefined) continue;
    if (!best || (metric.better === 'higher' ? value > best.value : value < best.value)) best = { value, label: system.label };
  }
  return best ? `${(skipq / best.value).toFixed(2)}× (vs ${best.label})` : '—';
}

/** The one results table, as Markdown (readable in a terminal too). */
export function renderTable(results: RunResults): string {
  const showPostgres = results.workloads.some((w) => w.scope === 'database');
  const header = ['workload', 'metric', ...results.systems.map((s) => s.label), ...(showPostgres ? ['PostgreSQL alone'] : []), 'skipq / best peer'];
  const rows: string[][] = [];
  const titled = new Set<string>();
  for (const workload of results.workloads) {
    for (const metric of workload.metrics) {
      const cells = results.systems.map((s) => (workload.scope === 'database' ? '—' : renderCell(results.cells.get(cellKey(workload.id, s.name)), metric.key)));
      // Rows nobody has a value for (server RSS without skipq) are left out.
      const postgres = showPostgres ? [workload.scope === 'database' ? renderCell(results.cells.get(cellKey(workload.id, 'postgres')), metric.key) : '—'] : [];
      if ([...cells, ...postgres].every((c) => c === '—')) continue;
      // The workload's name heads its first row only.
      const first = !titled.has(workload.id);
      titled.add(workload.id);
      rows.push([first ? workload.title(results.sizes) : '', metric.label, ...cells, ...postgres, metric.compare === false ? '—' : ratio(results, workload, metric)]);
    }
  }
  return markdownTable(header, rows);
}

/** Issue 13's targets, each with its ratio and "met"/"not met", from this run's cells. */
export function renderTargets(results: RunResults): string {
  const rows = evaluateTargets(
    (workload, system, key) => validMedian(results.cells.get(cellKey(workload, system)), key),
    (workload, system, key) => validRounds(results.cells.get(cellKey(workload, system)), key),
    results.workloads.map((w) => w.id),
  ).map((t) => [t.target, t.skipq, t.against, t.ratio === undefined ? '—' : `${t.ratio.toFixed(2)}×`, t.verdict]);
  return markdownTable(['target (issue 13)', 'skipq', 'against', 'ratio', 'verdict'], rows);
}

/** Why cells are INVALID, TIMEOUT or ERROR, one line per round. */
export function renderProblems(results: RunResults): string[] {
  const out: string[] = [];
  for (const [key, cell] of results.cells) {
    const [workload, system] = key.split('|');
    cell.rounds.forEach((r, i) => {
      for (const p of r.problems) out.push(`${workload} ${system} round ${i + 1}: INVALID: ${p}`);
    });
    for (const f of cell.failures) out.push(`${workload} ${system}: ${f}`);
  }
  return out;
}

/** bench/RESULTS.md: the table with what it was measured on and how. */
export function renderReport(results: RunResults, machine: MachineInfo, context: { command: string; startedAt: Date; minutes: number; notes: string[] }): string {
  const pg = machine.postgres;
  const problems = renderProblems(results);
  return [
    '# skipq benchmark results',
    '',
    `Measured ${context.startedAt.toISOString()} with \`${context.command}\` (${context.minutes.toFixed(1)} min). ` +
      `${results.rounds} round${results.rounds === 1 ? '' : 's'} per cell: median (min–max). One workload and one system at a time, never in parallel.`,
    '',
    '## Machine',
    '',
    `- CPU: ${machine.cpu}, ${machine.cores} cores; memory ${machine.memoryGiB} GiB; Linux ${machine.kernel}; Node ${machine.node}`,
    `- PostgreSQL: ${pg.version}; shared_buffers ${pg.shared_buffers}, synchronous_commit ${pg.synchronous_commit}, max_connections ${pg.max_connections}, fsync ${pg.fsync}, wal_level ${pg.wal_level}; on 127.0.0.1, shared by every system`,
    `- Redis: ${machine.redis} on 127.0.0.1 (BullMQ only)`,
    '',
    '## Systems and settings',
    '',
    ...results.systems.map((s) => `- **${s.label}**: ${s.version()}. ${s.settings}`),
    '',
    '## Results',
    '',
    renderTable(results),
    '',
    ...(problems.length > 0 ? ['### Cells that are not valid', '', ...problems.map((p) => `- ${p}`), ''] : []),
    '## Targets',
    '',
    'Ratios of medians from this run (memory: the worst valid round of any workload); a target whose rows did not run, or are not valid, is "not measured".',
    '',
    renderTargets(results),
    '',
    '## How it is measured',
    '',
    ...context.notes.map((n) => `- ${n}`),
    '',
  ].join('\n');
}
