import type { OpenAPIObject, OpenApiRouter } from 'trpc-to-openapi';
import { z } from 'zod';
import type { JobRegistry } from '../shared/index.js';
import { appRouter } from './routers/_app.js';

/** Where the document is served. */
export const OPENAPI_PATH = '/openapi.json';

type JsonSchema = Record<string, unknown> & { properties?: Record<string, JsonSchema>; required?: string[] };
type Operation = { operationId?: string; tags?: string[]; requestBody?: { content: Record<string, { schema: JsonSchema }> }; responses: Record<string, unknown> };

const ERROR_SCHEMA: JsonSchema = {
  type: 'object',
  description:
    'An error. The HTTP status follows `code` (BAD_REQUEST 400, UNAUTHORIZED 401, FORBIDDEN 403, NOT_FOUND 404, CONFLICT 409, ' +
    'PAYLOAD_TOO_LARGE 413, TOO_MANY_REQUESTS 429 with Retry-After, INTERNAL_SERVER_ERROR 500, SERVICE_UNAVAILABLE 503).',
  properties: {
    code: { type: 'string', description: "tRPC's error code, the same as `data.code` over tRPC" },
    skipqCode: { type: 'string', description: "skipq's reason (JOB_NOT_FOUND, LEASE_LOST, INVALID_PAYLOAD, ...), the same as `data.skipqCode` over tRPC; absent for routing errors" },
    message: { type: 'string', description: 'What went wrong, for people' },
    issues: {
      type: 'array',
      description: 'Each input problem, when the input failed validation',
      items: { type: 'object', properties: { path: { type: 'array', items: { type: ['string', 'number'] } }, message: { type: 'string' } }, required: ['path', 'message'] },
    },
    requestId: { type: 'string', description: 'The x-request-id of this request, also in the server log' },
  },
  required: ['code', 'message'],
};

/** A payload schema as JSON Schema, to inline (its own `$defs` kept resolvable under an `$id`). */
function payloadJsonSchema(type: string, schema: z.ZodType): JsonSchema {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  delete json.$schema;
  if (json.$defs) json.$id = `urn:skipq:payload:${type}`;
  return json;
}

/**
 * The enqueue body per job type: the body's own fields with `type` fixed and
 * `payload` the type's schema from the registry, one of them by `type`.
 */
function enqueueBodies(base: JsonSchema, registry: JobRegistry): { schemas: Record<string, JsonSchema>; oneOf: JsonSchema } {
  const schemas: Record<string, JsonSchema> = {};
  const mapping: Record<string, string> = {};
  for (const [type, def] of Object.entries(registry)) {
    const name = `EnqueueJob.${type}`;
    const required = new Set(base.required ?? []);
    required.add('type');
    if (!def.payload.safeParse(undefined).success) required.add('payload');
    schemas[name] = {
      ...base,
      title: `Enqueue a job of type ${type}`,
      properties: { ...base.properties, type: { type: 'string', const: type }, payload: payloadJsonSchema(type, def.payload) },
      required: [...required],
    };
    mapping[type] = `#/components/schemas/${name}`;
  }
  return { schemas, oneOf: { oneOf: Object.values(mapping).map(($ref) => ({ $ref })), discriminator: { propertyName: 'type', mapping } } };
}

/**
 * The OpenAPI 3.1 document of the REST surface (server/rest.ts), made by
 * trpc-to-openapi from the procedures' meta and zod schemas, then: every
 * error answer is the one Error schema, operations are tagged by router, and
 * with a registry the enqueue bodies name each job type with its payload
 * schema inlined (`z.toJSONSchema`), one of them by `type`.
 */
export async function createOpenApiDocument(options: { registry: JobRegistry | null; version: string }): Promise<OpenAPIObject> {
  // Loaded on the first request for the document: importing trpc-to-openapi
  // (its adapters load h3 and more) took 0.4-0.5 s here, which every server start would pay.
  const { generateOpenApiDocument } = await import('trpc-to-openapi');
  const document = generateOpenApiDocument(appRouter as unknown as OpenApiRouter, {
    title: 'skipq',
    version: options.version,
    description:
      'A job queue on PostgreSQL: the plain-JSON REST surface of the tRPC API at /trpc, from the same procedures and schemas. ' +
      'Bodies and answers are JSON; dates are ISO 8601 strings. Every call but health needs an API key (Authorization: Bearer skq_...) ' +
      'once the server has keys; producer keys enqueue and inspect, worker keys claim and report, admin keys do everything.',
    baseUrl: '/',
    securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'A skipq API key, skq_<id>_<secret> (npm run keys -- create --role producer)' } },
  });
  const components = (document.components ??= {});
  const schemas = (components.schemas ??= {}) as Record<string, JsonSchema>;
  schemas.Error = ERROR_SCHEMA;
  const enqueue = options.registry && Object.keys(options.registry).length > 0 ? options.registry : null;
  for (const item of Object.values(document.paths ?? {}) as Array<Record<string, Operation>>) {
    for (const operation of Object.values(item)) {
      const [tag] = (operation.operationId ?? '').split('-');
      if (tag) operation.tags = [tag];
      const { 200: ok } = operation.responses;
      operation.responses = { 200: ok, default: { description: 'An error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } } };
      const body = operation.requestBody?.content['application/json'];
      if (!enqueue || !body) continue;
      if (operation.operationId === 'jobs-enqueue') {
        const { schemas: perType, oneOf } = enqueueBodies(body.schema, enqueue);
        Object.assign(schemas, perType);
        schemas.EnqueueJob = oneOf;
        body.schema = { $ref: '#/components/schemas/EnqueueJob' };
      }
    }
  }
  // The batch's jobs are the same bodies; made after jobs-enqueue's, whatever the order of the paths.
  if (schemas.EnqueueJob) {
    for (const item of Object.values(document.paths ?? {}) as Array<Record<string, Operation>>) {
      for (const operation of Object.values(item)) {
        const jobs = operation.operationId === 'jobs-enqueueMany' ? operation.requestBody?.content['application/json']?.schema.properties?.jobs : undefined;
        if (jobs) jobs.items = { $ref: '#/components/schemas/EnqueueJob' };
      }
    }
  }
  return document;
}
