// Creates an order and its send-receipt job in one transaction, then awaits the receipt.
// Run (server: DATABASE_URL=... npm start -- --jobs ./examples/orders/jobs.ts):
//   DATABASE_URL=... npx tsx examples/orders/producer.ts buyer@example.com 4200
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { createQueueClient, JobFailedError } from '../../client/index.js';
import { createTxEnqueuer } from '../../server/app.js';
import { jobs } from './jobs.js';

const databaseUrl = process.env.DATABASE_URL;
if (!databaseUrl) throw new Error('set DATABASE_URL to the database the skipq server uses');
const email = process.argv[2] ?? 'buyer@example.com';
const totalCents = Number(process.argv[3] ?? 4200);

const pool = new pg.Pool({ connectionString: databaseUrl });
await pool.query(readFileSync(new URL('./orders.sql', import.meta.url), 'utf8'));

// The order and its job commit together or not at all; workers wake at the commit.
const skipq = createTxEnqueuer({ jobs });
const client = await pool.connect();
let jobId: string;
try {
  await client.query('BEGIN');
  const { rows } = await client.query<{ id: number }>('INSERT INTO orders (email, total_cents) VALUES ($1, $2) RETURNING id', [email, totalCents]);
  const orderId = rows[0]!.id;
  ({ id: jobId } = await skipq.enqueue(client, 'send-receipt', { orderId, email }, { uniqueKey: `receipt:${orderId}` }));
  await client.query('COMMIT');
  console.log(`order ${orderId} stored with job ${jobId}`);
} catch (error) {
  await client.query('ROLLBACK');
  throw error;
} finally {
  client.release();
}

const queue = createQueueClient({ url: process.env.SKIPQ_URL ?? 'http://127.0.0.1:3000/trpc', jobs, apiKey: process.env.SKIPQ_API_KEY });
try {
  // Typed { sentTo: string; receiptNo: string }, parsed with the registry's result schema.
  const receipt = await queue.result(jobId, { timeoutMs: 60_000 });
  console.log(`receipt ${receipt.receiptNo} sent to ${receipt.sentTo}`);
} catch (error) {
  if (error instanceof JobFailedError) console.error(`no receipt: ${error.lastError} after ${error.attempts} attempt(s)`);
  else throw error;
} finally {
  await queue.close();
  await pool.end();
}
