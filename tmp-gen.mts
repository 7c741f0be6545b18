import { z } from 'zod';
import { defineJobs } from './shared/index.js';
import { createOpenApiDocument } from './server/openapi.js';
const jobs = defineJobs({ note: { payload: z.object({ text: z.string().min(1) }) }, ingest: { payload: z.object({ url: z.url(), targetDate: z.iso.date() }), queue: 'ingestion' } });
const d = createOpenApiDocument({ registry: jobs, version: '0.1.0' });
console.log(JSON.stringify(d, null, 1));
