// The bench's job registry, shared by the skipq server (--jobs), producer and worker.
import { z } from 'zod';
import { defineJobs } from '../shared/index.js';
import type { OrderDoc } from './payload.js';

/**
 * The 4 KiB order of W2-4K and W3-4K, described field by field as an
 * application would declare it, so skipq validates it at enqueue and again
 * before the handler (the peers validate nothing; that cost is skipq's own).
 */
const orderDoc = z.object({
  orderId: z.string(),
  createdAt: z.string(),
  currency: z.string(),
  status: z.string(),
  customer: z.object({
    id: z.string(),
    name: z.string(),
    email: z.string(),
    phone: z.string(),
    tier: z.string(),
    address: z.object({ line1: z.string(), line2: z.string(), city: z.string(), postcode: z.string(), country: z.string() }),
  }),
  items: z.array(
    z.object({ sku: z.string(), name: z.string(), quantity: z.number().int(), unitPrice: z.number(), taxRate: z.number(), tags: z.array(z.string()) }),
  ),
  shipping: z.object({ method: z.string(), carrier: z.string(), trackingId: z.string(), cost: z.number() }),
  notes: z.string(),
}) satisfies z.ZodType<OrderDoc>;

export const jobs = defineJobs({
  bench: {
    // n: the job's index, to count executions; t: enqueue time for W4/MIX latency; doc: the 4 KiB rows' payload.
    payload: z.object({ n: z.number().int().min(0), t: z.number().optional(), doc: orderDoc.optional() }),
  },
});

export default jobs;
