import {
  ERROR_CODES,
  JOB_STATUSES,
  judge,
  LIMITS,
  type ChildCounts,
  type ChildrenAnswer,
  type ChildView,
  type EnqueuedFlow,
  type EnqueueInput,
  type FlowTree,
  type JobStatus,
} from '../shared/index.js';
import { prepare } from './enqueue.js';
import { QueueError } from './errors.js';
import type { LeaseDeps } from './leases.js';
import { flowChildCounts, flowChildren, flowFindExisting, flowInsert, type ChildRow, type FlowRow } from './queries/flows.js';
import { JobIdInUseError } from './queries/insert.js';
import { missError } from './verdicts.js';

// Flows: a parent that runs once all its children are finished. This file
// turns a flow as given (jobs.enqueueFlow) into rows, and reads a parent's
// children back. Releasing or failing a parent is no business of the server:
// the move that finishes its last (or failed) child does it in SQL.

/** What creating a flow needs from the server. */
export type FlowDeps = Pick<LeaseDeps, 'db' | 'hub' | 'registry' | 'maxPayloadBytes' | 'metrics'>;

/** One job of a flow, placed: its row, where it was in the input, and its children (indexes into the plan). */
interface PlannedJob {
  row: FlowRow;
  /** Where it is in the input, for messages (`children[2].parent`) and zod issue paths. */
  path: PropertyKey[];
  children: number[];
}

const pathText = (path: readonly PropertyKey[]): string =>
  path.reduce<string>((text, part) => (typeof part === 'number' ? `${text}[${part}]` : text ? `${text}.${String(part)}` : String(part)), '');

/** Prepares one job like jobs.enqueue does (registry, defaults, size), its errors named by its place in the flow. */
function prepareAt(deps: FlowDeps, input: EnqueueInput, path: PropertyKey[]) {
  try {
    return prepare(deps.registry, input, deps.maxPayloadBytes);
  } catch (error) {
    if (!(error instanceof QueueError)) throw error;
    const issues = error.issues?.map((i) => ({ path: [...path, 'payload', ...i.path], message: i.message }));
    throw new QueueError(error.code, `${pathText(path)}: ${error.message}`, issues);
  }
}

/**
 * Validates a whole flow and lays it out as rows, the parent of each sub-flow
 * before its children. Every job is checked against the registry as
 * jobs.enqueue checks it; a flow over LIMITS.flowJobs jobs or
 * LIMITS.flowDepth levels, or one naming an id twice, is refused. Throws the
 * first refusal; nothing is stored before all of it passed.
 */
export function planFlow(deps: FlowDeps, tree: FlowTree): PlannedJob[] {
  const planned: PlannedJob[] = [];
  const ids = new Map<string, PropertyKey[]>();
  const place = (input: EnqueueInput, path: PropertyKey[], parentId: string | null, children: number | null, onChildFailure: FlowRow['onChildFailure']): number => {
    if (planned.length === LIMITS.flowJobs) {
      throw new QueueError(ERROR_CODES.INVALID_INPUT, `a flow has at most ${LIMITS.flowJobs} jobs, the parent and every descendant counted; this one has more`);
    }
    const job = prepareAt(deps, input, path);
    const twin = ids.get(job.id);
    if (twin) throw new QueueError(ERROR_CODES.INVALID_INPUT, `${pathText(path)}: id ${job.id} is also the id of ${pathText(twin)}; every job of a flow needs its own`);
    ids.set(job.id, path);
    planned.push({
      row: {
        id: job.id,
        queue: job.queue,
        type: job.type,
        payloadJson: job.payloadJson,
        priority: job.priority,
        runAt: job.runAt,
        delayMs: job.delayMs,
        maxRetries: job.maxRetries,
        timeoutMs: job.timeoutMs,
        parentId,
        childrenLeft: children,
        onChildFailure,
        concurrencyKey: job.concurrencyKey,
        traceContext: job.traceContext,
      },
      path,
      children: [],
    });
    return planned.length - 1;
  };
  const tooDeep = (path: readonly PropertyKey[]): QueueError =>
    new QueueError(ERROR_CODES.INVALID_INPUT, `${pathText(path)}: a flow has at most ${LIMITS.flowDepth} levels (the parent is level 1); this job would be on level ${LIMITS.flowDepth + 1}`);
  const walk = (flow: FlowTree, path: PropertyKey[], parentId: string | null, level: number): number => {
    const { onChildFailure, ...parent } = flow.parent;
    const at = place(parent, [...path, 'parent'], parentId, flow.children.length, onChildFailure);
    const id = (planned[at] as PlannedJob).row.id;
    flow.children.forEach((child, index) => {
      const childPath = [...path, 'children', index];
      if (level === LIMITS.flowDepth) throw tooDeep(childPath);
      const placed = 'parent' in child ? walk(child, childPath, id, level + 1) : place(child, childPath, id, null, null);
      (planned[at] as PlannedJob).children.push(placed);
    });
    return at;
  };
  walk(tree, [], null, 1);
  return planned;
}

/** The answer for the flow rooted at `at`, mirroring the input's shape. */
function answerOf(planned: readonly PlannedJob[], at: number, created: boolean): EnqueuedFlow {
  const job = planned[at] as PlannedJob;
  return { id: job.row.id, type: job.row.type, queue: job.row.queue, created, children: job.children.map((c) => answerOf(planned, c, created)) };
}

/**
 * Creates a flow: every job or none, in one statement. Its jobs without
 * children are claimable as usual; each parent waits (pending, due never)
 * until its last child is finished. `allow` is asked about every job's queue
 * first (the caller's key may be limited to some). A flow sent again with the
 * same ids (a retry whose reply was lost) answers the flow it made, `created:
 * false`; an id used by any other job is JOB_ID_CONFLICT.
 */
export async function enqueueFlow(deps: FlowDeps, tree: FlowTree, allow: (queue: string) => void): Promise<EnqueuedFlow> {
  const planned = planFlow(deps, tree);
  for (const job of planned) allow(job.row.queue);
  const rows = planned.map((p) => p.row);
  try {
    await flowInsert(deps.db, rows);
  } catch (error) {
    if (!(error instanceof JobIdInUseError)) throw error;
    const existing = new Map((await flowFindExisting(deps.db, rows.map((r) => r.id))).map((e) => [e.id, e]));
    const same = (r: FlowRow): boolean => {
      const e = existing.get(r.id);
      return e !== undefined && e.task_type === r.type && e.queue === r.queue && e.parent_id === r.parentId;
    };
    if (rows.every(same)) return answerOf(planned, 0, false);
    const clash = planned.find((p) => existing.has(p.row.id) && !same(p.row)) ?? planned.find((p) => existing.has(p.row.id)) ?? (planned[0] as PlannedJob);
    throw new QueueError(
      ERROR_CODES.JOB_ID_CONFLICT,
      `${pathText(clash.path)}: job id ${clash.row.id} is already used by another job; a flow's ids may be sent again only to repeat the same flow, whole`,
    );
  }
  const metrics = deps.metrics;
  if (metrics) for (const r of rows) metrics.enqueued(r.queue, r.type);
  // This server's own waiting claims need no NOTIFY round trip (the insert sent one for the others).
  deps.hub.wake(new Set(rows.filter((r) => r.childrenLeft === null).map((r) => r.queue)));
  return answerOf(planned, 0, true);
}

const toChildView = (r: ChildRow): ChildView => ({
  id: r.id as string,
  type: r.task_type as string,
  queue: r.queue as string,
  status: r.status as JobStatus,
  result: r.result ?? null,
  error: r.error_message,
  errorCode: r.error_code,
  attempt: r.attempt as number,
  completedAt: r.completed_at,
  failedAt: r.failed_at,
});

/** The page's answer: its children, and where the next page starts. */
function pageOf(rows: readonly ChildRow[], limit: number): ChildrenAnswer {
  const children = rows.filter((r) => r.id !== null).map(toChildView);
  return { children, nextCursor: children.length === limit ? ((children.at(-1) as ChildView).id) : null };
}

/**
 * A page of a parent's children for a producer, in id order. `visible` says
 * whether the caller may see jobs of the parent's queue; an unknown id and a
 * hidden one are the same JOB_NOT_FOUND.
 */
export async function childrenOf(
  deps: Pick<LeaseDeps, 'db'>,
  params: { id: string; cursor: string | null; limit: number },
  visible: (queue: string) => boolean,
): Promise<ChildrenAnswer> {
  const rows = await flowChildren(deps.db, { parentId: params.id, cursor: params.cursor, limit: params.limit, holder: null });
  const first = rows[0];
  if (!first || !visible(first.parent_queue)) throw new QueueError(ERROR_CODES.JOB_NOT_FOUND, `no job with id ${params.id}`);
  return pageOf(rows, params.limit);
}

/**
 * A page of the children of a job the caller holds (a handler's
 * `ctx.children()`): the same check as a heartbeat, so a worker whose attempt
 * ended (lease lost, cancelled) gets LEASE_LOST or JOB_CANCELLED, not data.
 */
export async function heldChildrenOf(
  deps: Pick<LeaseDeps, 'db'>,
  params: { workerId: string; id: string; attempt: number; cursor: string | null; limit: number },
): Promise<ChildrenAnswer> {
  const holder = { workerId: params.workerId, attempt: params.attempt };
  const rows = await flowChildren(deps.db, { parentId: params.id, cursor: params.cursor, limit: params.limit, holder });
  const first = rows[0];
  const verdict = judge(
    'heartbeat',
    first && { status: first.parent_status, worker_id: first.parent_worker_id, attempt: first.parent_attempt, ended_by: first.parent_ended_by },
    holder,
  );
  if (verdict !== 'move') throw missError(verdict, params.id, params.attempt, params.workerId);
  return pageOf(rows, params.limit);
}

/**
 * The counts jobs.explain shows for a parent waiting for its children; null
 * when the job has no children (or no longer exists).
 */
export async function childCountsOf(deps: Pick<LeaseDeps, 'db'>, id: string): Promise<ChildCounts | null> {
  const rows = await flowChildCounts(deps.db, id);
  const first = rows[0];
  if (!first || first.children_left === null) return null;
  const byStatus = Object.fromEntries(JOB_STATUSES.map((s) => [s, 0])) as Record<JobStatus, number>;
  for (const r of rows) if (r.status !== null) byStatus[r.status] = r.n ?? 0;
  return { total: Object.values(byStatus).reduce((a, b) => a + b, 0), left: first.children_left, byStatus };
}
