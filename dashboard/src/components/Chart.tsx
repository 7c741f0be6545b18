import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { BUCKET_MS, series, type History } from '../throughput.js';

const toAligned = (h: History, queues: readonly string[]): uPlot.AlignedData => {
  const { x, ys } = series(h, queues);
  return [x, ...ys];
};

const cssVar = (name: string): string => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

function options(queues: readonly string[], width: number): uPlot.Options {
  const fg = cssVar('--muted');
  const grid = cssVar('--grid');
  const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
  return {
    width,
    height: 220,
    legend: { show: true },
    cursor: { drag: { x: false, y: false } },
    scales: {
      x: { time: true },
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

/**
 * The throughput of each queue over the last 15 minutes (throughput.ts), moving
 * along every BUCKET_MS even when nothing finishes.
 */
export function ThroughputChart({ history, queues, exact }: { history: History; queues: readonly string[]; exact: boolean }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const current = useRef(history);
  current.current = history;
  const key = queues.join('\n');

  // A new chart when the queues change or the colour scheme flips (canvas colours are fixed at creation).
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const make = () => {
      plot.current?.destroy();
      plot.current = new uPlot(options(queues, el.clientWidth || 600), toAligned(current.current, queues), el);
    };
    make();
    const scheme = matchMedia('(prefers-color-scheme: dark)');
    scheme.addEventListener('change', make);
    const resize = new ResizeObserver(() => plot.current?.setSize({ width: el.clientWidth, height: 220 }));
    resize.observe(el);
    // The window moves on with the clock, not only when jobs finish.
    const tick = setInterval(() => plot.current?.setData(toAligned(current.current, queues)), BUCKET_MS);
    return () => {
      clearInterval(tick);
      scheme.removeEventListener('change', make);
      resize.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, [key]);

  useEffect(() => {
    plot.current?.setData(toAligned(history, queues));
  }, [history]);

  const totals = queues.map((queue) => {
    let n = 0;
    for (const bucket of history.buckets.values()) n += bucket.get(queue) ?? 0;
    return [queue, n] as const;
  });
  return (
    <figure class="chart">
      <div ref={box} class="chart-box" role="img" aria-label={`Finished jobs per second per queue, last 15 minutes: ${queues.join(', ')}`} data-testid="throughput" />
      <figcaption class="muted">
        Finished jobs (completed + failed) per second in {BUCKET_MS / 1000} s steps since {new Date(history.since).toLocaleTimeString()},{' '}
        {exact ? 'counted from the events stream' : 'estimated from the counts this page read (events are not connected)'}; the server keeps no history.
        {' '}Finished in that time:{' '}
        {totals.map(([queue, n], i) => (
          <span key={queue} data-testid={`finished-${queue}`} data-count={n}>
            {i > 0 ? ', ' : ''}
            {queue} {n.toLocaleString()}
          </span>
        ))}
        .
      </figcaption>
    </figure>
  );
}
