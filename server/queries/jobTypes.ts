import type { Db } from '../db/pool.js';

/** A row of `job_types`: one registered job type as SQL callers see it. */
export interface JobTypeRow {
  name: string;
  queue: string;
  priority: number;
  max_retries: number;
  backoff: unknown;
  timeout_ms: number | null;
  key_concurrency: number | null;
  payload_schema: unknown;
  schema_complete: boolean;
  removed_at: Date | null;
}

/** One type as {@link jobTypesSync} writes it (JSON fields as JSON text). */
export interface JobTypeWrite {
  name: string;
  queue: string;
  priority: number;
  maxRetries: number;
  backoffJson: string | null;
  timeoutMs: number | null;
  keyConcurrency: number | null;
  payloadSchemaJson: string;
  schemaComplete: boolean;
}

/**
 * jobTypesSync: makes job_types say what this registry says, in one statement.
 * Each type is inserted, or updated when a field differs (an unchanged type is
 * not written: every server does this at start), and a type that was marked
 * removed and is back is live again. Types this registry lacks are marked
 * removed (kept: their jobs may still exist). Answers the names written, the
 * names marked removed, and the queues whose counting a type's keyConcurrency
 * changed (set, cleared, moved to another queue, removed or back: the queue
 * of before and the one of now), which the caller recounts. Every CTE reads
 * the table as it was before the statement, so `before` is the old registry.
 */
export async function jobTypesSync(db: Db, types: readonly JobTypeWrite[]): Promise<{ written: string[]; removed: string[]; rekeyed: string[] }> {
  const { rows } = await db.query<{ written: string[] | null; removed: string[] | null; rekeyed: string[] | null }>({
    name: 'jobTypesSync',
    text: `
WITH given AS (
  SELECT *
  FROM unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::text[], $6::int[], $7::text[], $8::boolean[], $9::int[])
    AS g(name, queue, priority, max_retries, backoff, timeout_ms, payload_schema, schema_complete, key_concurrency)
),
before AS (
  SELECT jt.name, jt.queue, jt.key_concurrency, jt.removed_at
  FROM job_types AS jt
),
rekeyed AS (
  SELECT b.queue
  FROM before AS b
  LEFT JOIN given AS g ON g.name = b.name
  WHERE b.key_concurrency IS NOT NULL
    AND b.removed_at IS NULL
    AND (g.name IS NULL OR (g.queue, g.key_concurrency) IS DISTINCT FROM (b.queue, b.key_concurrency))
  UNION
  SELECT g.queue
  FROM given AS g
  LEFT JOIN before AS b ON b.name = g.name
  WHERE g.key_concurrency IS NOT NULL
    AND (b.name IS NULL OR b.removed_at IS NOT NULL OR (g.queue, g.key_concurrency) IS DISTINCT FROM (b.queue, b.key_concurrency))
),
written AS (
  INSERT INTO job_types AS jt (name, queue, priority, max_retries, backoff, timeout_ms, payload_schema, schema_complete, key_concurrency)
  SELECT g.name, g.queue, g.priority, g.max_retries, g.backoff::jsonb, g.timeout_ms, g.payload_schema::jsonb, g.schema_complete, g.key_concurrency
  FROM given AS g
  ORDER BY g.name COLLATE "C"
  ON CONFLICT (name) DO UPDATE
  SET queue = EXCLUDED.queue,
      priority = EXCLUDED.priority,
      max_retries = EXCLUDED.max_retries,
      backoff = EXCLUDED.backoff,
      timeout_ms = EXCLUDED.timeout_ms,
      payload_schema = EXCLUDED.payload_schema,
      schema_complete = EXCLUDED.schema_complete,
      key_concurrency = EXCLUDED.key_concurrency,
      removed_at = NULL,
      updated_at = now()
  WHERE (jt.queue, jt.priority, jt.max_retries, jt.backoff, jt.timeout_ms, jt.payload_schema, jt.schema_complete, jt.key_concurrency, jt.removed_at)
    IS DISTINCT FROM
        (EXCLUDED.queue, EXCLUDED.priority, EXCLUDED.max_retries, EXCLUDED.backoff, EXCLUDED.timeout_ms, EXCLUDED.payload_schema, EXCLUDED.schema_complete, EXCLUDED.key_concurrency, NULL::timestamptz)
  RETURNING jt.name
),
removed AS (
  UPDATE job_types AS jt
  SET removed_at = now(),
      updated_at = now()
  WHERE jt.removed_at IS NULL
    AND NOT (jt.name = ANY ($1::text[]))
  RETURNING jt.name
)
SELECT (SELECT array_agg(w.name) FROM written AS w) AS written,
       (SELECT array_agg(r.name) FROM removed AS r) AS removed,
       (SELECT array_agg(k.queue) FROM rekeyed AS k) AS rekeyed`,
    values: [
      types.map((t) => t.name),
      types.map((t) => t.queue),
      types.map((t) => t.priority),
      types.map((t) => t.maxRetries),
      types.map((t) => t.backoffJson),
      types.map((t) => t.timeoutMs),
      types.map((t) => t.payloadSchemaJson),
      types.map((t) => t.schemaComplete),
      types.map((t) => t.keyConcurrency),
    ],
  });
  return { written: rows[0]?.written ?? [], removed: rows[0]?.removed ?? [], rekeyed: rows[0]?.rekeyed ?? [] };
}

/** jobTypeList: every row of job_types, by name (removed ones too). */
export async function jobTypeList(db: Db): Promise<JobTypeRow[]> {
  const { rows } = await db.query<JobTypeRow>({
    name: 'jobTypeList',
    text: `
SELECT name, queue, priority, max_retries, backoff, timeout_ms, key_concurrency, payload_schema, schema_complete, removed_at
FROM job_types
ORDER BY name COLLATE "C"`,
  });
  return rows;
}
