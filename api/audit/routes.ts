/** /api/audit-logs: read, verify and export the tamper-evident audit log. */
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import type { AuditStore } from '../../stores/audit-store.js';
import { AuditEntrySchema, AuditKindSchema } from '../../domain/audit-entry.js';
import { errorResponses, jsonResponse as json, validationHook, type AppEnv } from '../openapi.js';

const AuditBreakSchema = z.object({ seq: z.number(), reason: z.string() });

export function auditRouter(audit: AuditStore) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      summary: 'Audit entries, newest first',
      request: {
        query: z
          .object({
            limit: z.coerce.number().int().min(1).max(1000).default(100),
            action_id: z.string().min(1).max(100).optional(),
            agent_id: z.string().min(1).max(100).optional(),
            kind: AuditKindSchema.optional(),
            since: z.iso.datetime({ offset: true }).optional().describe('Only entries at or after this time'),
            until: z.iso.datetime({ offset: true }).optional().describe('Only entries before this time'),
          })
          .strict(),
      },
      responses: { 200: json(z.object({ entries: z.array(AuditEntrySchema) }), 'Entries'), ...errorResponses(400, 401) },
    }),
    async (c) => c.json({ entries: await audit.list(c.req.valid('query')) }, 200),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/verify',
      summary: 'Walk the hash chain and check the anchor of its head; report every break, and entries whose actor was not verified',
      responses: {
        200: json(
          z.object({
            ok: z.boolean(),
            entries: z.number(),
            breaks: z.array(AuditBreakSchema),
            first_broken: AuditBreakSchema.nullable(),
            unverified_actors: z.object({ count: z.number(), seqs: z.array(z.number()) }),
            anchor: z.object({ key_id: z.string(), since_seq: z.number() }).nullable(),
          }),
          'Verification',
        ),
        ...errorResponses(401),
      },
    }),
    async (c) => c.json(await audit.verify(), 200),
  );

  app.get('/export', async (c) => c.body(await auditLogJsonl(audit), 200, { 'content-type': 'application/x-ndjson' }));
  return app;
}

/** The whole log as JSON Lines, oldest first: what an export downloads. */
export async function auditLogJsonl(audit: AuditStore): Promise<string> {
  const lines: string[] = [];
  await audit.exportJsonl((line) => lines.push(line));
  return lines.length ? `${lines.join('\n')}\n` : '';
}
