import type { JobStatus, JobView } from '../../shared/index.js';
import type { PrismaClient } from '../db/prisma.js';

/** Filters of {@link jobList}; null means no filter. */
export interface ListParams {
  queues: readonly string[] | null;
  type: string | null;
  statuses: readonly JobStatus[] | null;
  /** Return jobs older than this id (ids are time-ordered UUIDv7). */
  cursor: string | null;
  limit: number;
}

/** jobList: jobs newest first. Dynamic filters are what Prisma's typed `where` is for; this is not a hot path. */
export async function jobList(prisma: PrismaClient, params: ListParams): Promise<JobView[]> {
  const rows = await prisma.taskQueue.findMany({
    where: {
      ...(params.queues ? { queue: { in: [...params.queues] } } : {}),
      ...(params.type ? { taskType: params.type } : {}),
      ...(params.statuses ? { status: { in: [...params.statuses] } } : {}),
      ...(params.cursor ? { id: { lt: params.cursor } } : {}),
    },
    orderBy: { id: 'desc' },
    take: params.limit,
  });
  return rows.map((r): JobView => ({
    id: r.id,
    type: r.taskType,
    queue: r.queue,
    status: r.status as JobStatus,
    payload: r.payload,
    priority: r.priority,
    attempt: r.attempt,
    retryCount: r.retryCount,
    maxRetries: r.maxRetries,
    scheduledFor: r.scheduledFor,
    startedAt: r.startedAt,
    completedAt: r.completedAt,
    failedAt: r.failedAt,
    workerId: r.workerId,
    leaseExpiresAt: r.leaseExpiresAt,
    error: r.errorMessage,
    errorCode: r.errorCode,
    timeoutMs: r.timeoutMs,
    result: r.result ?? null,
    progress: r.progress ?? null,
    uniqueKey: r.uniqueKey,
    cancelRequestedAt: r.cancelRequestedAt,
    parentId: r.parentId,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  }));
}
