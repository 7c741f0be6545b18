// The bench's 4 KiB payload (W2-4K, W3-4K): one realistic JSON document, the
// same for every system. Imports nothing, so producers, workers and the skipq
// registry (bench/jobs.ts, which describes it in zod) can all use it.

/** Which payload a bench job carries: `{ n }` alone, or `{ n, doc }` with a ~4 KiB order. */
export type PayloadKind = 'tiny' | '4k';

/** An e-commerce order, the kind of document queues carry in practice. */
export interface OrderDoc {
  orderId: string;
  createdAt: string;
  currency: string;
  status: string;
  customer: {
    id: string;
    name: string;
    email: string;
    phone: string;
    tier: string;
    address: { line1: string; line2: string; city: string; postcode: string; country: string };
  };
  items: Array<{ sku: string; name: string; quantity: number; unitPrice: number; taxRate: number; tags: string[] }>;
  shipping: { method: string; carrier: string; trackingId: string; cost: number };
  notes: string;
}

/** 23 line items make the document 4,100-4,120 bytes of JSON (4 KiB), depending on n's digits. */
const ITEMS = 23;

/** The order id job n's handler reads back: the one field it touches. */
export const orderIdOf = (n: number): string => `ord-${String(n).padStart(8, '0')}`;

/**
 * Job n's document. A fresh object per job, with n in a few fields: a batch of
 * the same object would let superjson send it once with references (its
 * referential-equality meta), which no real batch of distinct orders gets.
 */
export function orderDoc(n: number): OrderDoc {
  return {
    orderId: orderIdOf(n),
    createdAt: '2026-11-30T12:34:56.789Z',
    currency: 'EUR',
    status: 'paid',
    customer: {
      id: `cus-${(n * 7919) % 100_000}`,
      name: 'Ada Lovelace',
      email: 'ada.lovelace@example.com',
      phone: '+44 20 7946 0958',
      tier: 'gold',
      address: { line1: '12 Analytical Engine Row', line2: 'Flat 3', city: 'London', postcode: 'NW1 6XE', country: 'GB' },
    },
    items: Array.from({ length: ITEMS }, (_, i) => ({
      sku: `SKU-${1000 + i}`,
      name: `Widget model ${i} (stainless steel, boxed)`,
      quantity: 1 + (i % 4),
      unitPrice: 19.99 + i,
      taxRate: 0.2,
      tags: ['hardware', 'boxed', i % 2 ? 'sale' : 'regular'],
    })),
    shipping: { method: 'express', carrier: 'DHL', trackingId: `JD0146000${n}`, cost: 7.5 },
    notes: 'Leave at the reception desk if nobody answers the door; call ahead on weekends.',
  };
}
