import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { WINDOW_MS, type Sample } from '../stats.js';

/** Readings further apart than this are a gap (the tab was hidden, or another page was open), not a rate. */
const MAX_GAP_MS = 10_000;

/**
 * Finished jobs per second per queue between consecutive readings. Counts can
 * also fall (retention deletes old rows, a retry takes a job out of failed):
 * a fall is counted as zero, so this is an estimate; the events subscription
 * will give exact figures.
 */
export function throughput(samples: readonly Sample[], queues: readonly string[]): uPlot.AlignedData {
  const x: number[] = [];
  const ys = queues.map(() => [] as Array<number | null>);
  samples.forEach((sample, i) => {
    x.push(sample.at / 1000);
    const prev = i > 0 ? samples[i - 1] : undefined;
    queues.forEach((queue, q) => {
      const now = sample.finished.get(queue);
      const before = prev?.finished.get(queue);
      const dt = prev ? sample.at - prev.at : 0;
      (ys[q] as Array<number | null>).push(prev && now !== undefined && before !== undefined && dt > 0 && dt <= MAX_GAP_MS ? Math.max(0, now - before) / (dt / 1000) : null);
    });
  });
  return [x, ...ys];
}

const cssVar = (name: string): string => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

/**
 * The x range: the last 15 minutes, or less while the page has been open for
 * less (at least a minute), so a fresh page's first readings are not a sliver at the edge.
 */
function timeRange(first: number | undefined): [number, number] {
  const now = Date.now();
  const start = Math.max(now - WINDOW_MS, Math.min(first ?? now, now - 60_000));
  return [start / 1000, now / 1000];
}

function options(queues: readonly string[], width: number, firstAt: () => number | undefined): uPlot.Options {
  const fg = cssVar('--muted');
  const grid = cssVar('--grid');
  const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
  return {
    width,
    height: 220,
    legend: { show: true },
    cursor: { drag: { x: false, y: false } },
    scales: {
      x: { time: true, range: () => timeRange(firstAt()) },
      y: { range: (_u, _min, max) => [0, Math.max(1, (max ?? 0) * 1.15)] },
    },
    axes: [axis, { ...axis, size: 48, label: 'jobs/s', labelSize: 18 }],
    series: [
      {},
      ...queues.map((queue, i) => ({
        label: queue,
        stroke: cssVar(`--series-${i % 6}`),
        width: 2,
        value: (_u: uPlot, v: number | null) => (v === null ? '—' : `${v.toFixed(1)}/s`),
      })),
    ],
  };
}

/** The throughput of each queue over the last 15 minutes, from the readings this page took. */
export function ThroughputChart({ samples, queues }: { samples: readonly Sample[]; queues: readonly string[] }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const current = useRef(samples);
  current.current = samples;
  const key = queues.join('\n');

  // A new chart when the queues change or the colour scheme flips (canvas colours are fixed at creation).
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const make = () => {
      plot.current?.destroy();
      plot.current = new uPlot(options(queues, el.clientWidth || 600, () => current.current[0]?.at), throughput(current.current, queues), el);
    };
    make();
    const scheme = matchMedia('(prefers-color-scheme: dark)');
    scheme.addEventListener('change', make);
    const resize = new ResizeObserver(() => plot.current?.setSize({ width: el.clientWidth, height: 220 }));
    resize.observe(el);
    return () => {
      scheme.removeEventListener('change', make);
      resize.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, [key]);

  useEffect(() => {
    plot.current?.setData(throughput(samples, queues));
  }, [samples]);

  const latest = samples.at(-1);
  const since = samples[0];
  return (
    <figure class="chart">
      <div ref={box} class="chart-box" role="img" aria-label={`Finished jobs per second per queue, last 15 minutes: ${queues.join(', ')}`} />
      <figcaption class="muted">
        Finished jobs (completed + failed) per second, estimated from the counts this page read
        {since && latest ? ` since ${new Date(since.at).toLocaleTimeString()}` : ''}; the server keeps no history yet.
      </figcaption>
    </figure>
  );
}
