import { useState } from 'preact/hooks';

// A payload may hold up to 1 MiB: render at most this many entries per object
// or array, so one huge array cannot freeze the page.
const MAX_ENTRIES = 200;

function Scalar({ value }: { value: unknown }) {
  if (value === null) return <span class="json-null">null</span>;
  if (typeof value === 'string') return <span class="json-string">{JSON.stringify(value)}</span>;
  if (typeof value === 'number') return <span class="json-number">{String(value)}</span>;
  if (typeof value === 'boolean') return <span class="json-boolean">{String(value)}</span>;
  return <span class="json-other">{String(value)}</span>;
}

function Node({ name, value, depth }: { name?: string; value: unknown; depth: number }) {
  const label = name !== undefined && <span class="json-key">{JSON.stringify(name)}: </span>;
  if (value === null || typeof value !== 'object') {
    return (
      <div class="json-leaf">
        {label}
        <Scalar value={value} />
      </div>
    );
  }
  const isArray = Array.isArray(value);
  const entries: Array<[string, unknown]> = isArray ? (value as unknown[]).map((v, i) => [String(i), v]) : Object.entries(value);
  const summary = isArray ? `[ ${entries.length} item${entries.length === 1 ? '' : 's'} ]` : `{ ${entries.length} key${entries.length === 1 ? '' : 's'} }`;
  if (entries.length === 0) {
    return (
      <div class="json-leaf">
        {label}
        <span class="json-meta">{isArray ? '[]' : '{}'}</span>
      </div>
    );
  }
  return (
    <details class="json-node" open={depth < 2}>
      <summary>
        {label}
        <span class="json-meta">{summary}</span>
      </summary>
      <div class="json-children">
        {entries.slice(0, MAX_ENTRIES).map(([key, child]) => (
          <Node key={key} name={isArray ? undefined : key} value={child} depth={depth + 1} />
        ))}
        {entries.length > MAX_ENTRIES && <div class="muted">… {entries.length - MAX_ENTRIES} more (see raw JSON)</div>}
      </div>
    </details>
  );
}

/** A JSON value as a collapsible tree (native <details>, keyboard operable), or as indented raw text. */
export function Json({ value, label }: { value: unknown; label: string }) {
  const [raw, setRaw] = useState(false);
  return (
    <div class="json" data-testid={`json-${label}`}>
      <div class="json-toolbar">
        <button type="button" class="small" aria-pressed={raw} onClick={() => setRaw(!raw)}>
          {raw ? 'Tree' : 'Raw JSON'}
        </button>
      </div>
      {raw ? <pre class="json-raw">{JSON.stringify(value, null, 2)}</pre> : <Node value={value} depth={0} />}
    </div>
  );
}
