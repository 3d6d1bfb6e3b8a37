/** /api/agents: create, list, inspect, pause, resume and stop agents. */
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import {
  AgentIdSchema,
  AgentRecordSchema,
  AgentStatusSchema,
  CreateAgentRequestSchema,
  StopAgentRequestSchema,
} from '../../domain/agent.js';
import { SkillIdSchema } from '../../domain/skill.js';
import { AgentSummarySchema, type AgentService } from './service.js';
import type { AgentStats } from './stats.js';
import { UsageSummarySchema } from '../../sandbox/container-usage.js';
import { requireRole } from '../middleware/auth.js';
import { errorResponses, jsonBody, jsonResponse as json, validationHook, type AppEnv } from '../openapi.js';

const IdParams = z.object({ id: AgentIdSchema });

export function agentsRouter(agents: AgentService, stats?: AgentStats) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  // Reading needs any key (viewer and up); changing an agent needs the operator role.
  app.on('POST', ['/', '/*'], requireRole('operator'));

  app.openapi(
    createRoute({
      method: 'post',
      path: '/',
      summary: 'Create an agent in a new sandbox',
      description:
        'Starts the agent workflow; the agent is "provisioning" until its sandbox runs. Poll GET /api/agents/{id}. ' +
        'runtime runc, network_enabled and limits above the WARDEN_OPERATOR_MAX_* settings need an admin key (403); an unknown skill or limits whose tmpfs mounts do not fit in memory_mb are a 422; ' +
        "limits the Docker host cannot hold beside its other agents' (its memory and cores times the overcommit settings) are a 409.",
      request: jsonBody(CreateAgentRequestSchema),
      responses: { 201: json(AgentRecordSchema, 'The agent, provisioning'), ...errorResponses(400, 403, 409, 422, 503) },
    }),
    async (c) => c.json(await agents.createAgent(c.req.valid('json'), c.get('identity')), 201),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      summary: 'List agents (Temporal visibility)',
      request: {
        query: z
          .object({
            status: AgentStatusSchema.optional(),
            skill_id: SkillIdSchema.optional(),
            host: z
              .string()
              .regex(/^[a-z0-9][a-z0-9.-]*$/)
              .optional(),
            limit: z.coerce.number().int().min(1).max(1000).default(100),
          })
          .strict(),
      },
      responses: { 200: json(z.object({ agents: z.array(AgentSummarySchema) }), 'Agents, newest first'), ...errorResponses(400) },
    }),
    async (c) => c.json({ agents: await agents.listAgents(c.req.valid('query')) }, 200),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}',
      summary: "An agent's full record",
      request: {
        params: IdParams,
        query: z
          .object({
            usage: z
              .enum(['true', 'false'])
              .optional()
              .describe('true: add a usage summary from the Docker engine (can take about a second).'),
          })
          .strict(),
      },
      responses: {
        200: json(
          AgentRecordSchema.extend({
            usage: UsageSummarySchema.nullable().optional().describe('With ?usage=true: live usage while the sandbox runs or is paused.'),
          }),
          'The agent',
        ),
        ...errorResponses(400, 404, 503),
      },
    }),
    async (c) => {
      const agent = await agents.getAgent(c.req.valid('param').id);
      if (c.req.valid('query').usage !== 'true' || !stats) return c.json(agent, 200);
      return c.json({ ...agent, usage: await stats.usageSummary(agent) }, 200);
    },
  );

  for (const action of ['pause', 'resume'] as const) {
    app.openapi(
      createRoute({
        method: 'post',
        path: `/{id}/${action}`,
        summary: `${action === 'pause' ? 'Pause (freeze)' : 'Resume'} an agent's sandbox`,
        description: 'Sends the signal; the returned record is the state before it took effect.',
        request: { params: IdParams },
        responses: { 202: json(AgentRecordSchema, 'Signal delivered'), ...errorResponses(400, 403, 404, 409, 503) },
      }),
      async (c) => c.json(await agents.signalAgent(c.req.valid('param').id, action, false, c.get('identity')), 202),
    );
  }

  app.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/stop',
      summary: 'Stop an agent and remove its sandbox',
      description: 'Graceful: SIGTERM, then SIGKILL after the grace period. force: SIGKILL at once.',
      request: { params: IdParams, ...jsonBody(StopAgentRequestSchema, false) },
      responses: { 202: json(AgentRecordSchema, 'Signal delivered'), ...errorResponses(400, 403, 404, 409, 503) },
    }),
    async (c) => {
      // The body is optional: without one (or without a JSON content type) the stop is graceful.
      const force = (c.req.valid('json') as { force?: boolean } | undefined)?.force ?? false;
      return c.json(await agents.signalAgent(c.req.valid('param').id, 'stop', force, c.get('identity')), 202);
    },
  );

  return app;
}
