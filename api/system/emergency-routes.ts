/** /api/system: the emergency stop (admin), the resume (admin) and the lockdown state (viewer). */
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import { lockdownMessage, stopWorkflowIdOf } from '../../domain/lockdown.js';
import { EmergencyStopOutcomeSchema, LockdownSchema, type LockdownService } from './lockdown-service.js';
import { requireRole } from '../middleware/auth.js';
import { errorResponses, jsonBody as body, jsonResponse as json, validationHook, type AppEnv } from '../openapi.js';

/** Why: the emergency stop and the resume each need one, at both doors (the API and the console). */
export const ReasonRequestSchema = z
  .object({ reason: z.string().trim().min(1, 'reason: say why').max(500, 'reason: at most 500 characters') })
  .strict();

const StopOutcomeSchema = z.object({ locked: z.literal(true) }).extend(EmergencyStopOutcomeSchema.shape);

const LockdownStateSchema = z.object({
  locked: z.boolean(),
  since: z.string().nullable(),
  by: z.string().nullable(),
  by_name: z.string().nullable(),
  reason: z.string().nullable(),
  stop_workflow_id: z.string().nullable(),
  message: z.string().nullable(),
});

export function emergencyRouter(lockdown: LockdownService) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.on('POST', ['/emergency-stop', '/resume'], requireRole('admin'));

  app.openapi(
    createRoute({
      method: 'post',
      path: '/emergency-stop',
      summary: 'Emergency stop (admin): lock down, force-stop every agent, cancel every pending approval',
      description:
        'The lockdown is held by Temporal and recorded in the audit log: it survives restarts and a terminated capacity workflow; until POST /api/system/resume, new agents and actions are refused (423). ' +
        'The stop itself is a workflow; this answers with its report when it is ready within a minute (200), or with completed: false (202) while it carries on.',
      request: body(ReasonRequestSchema),
      responses: {
        200: json(StopOutcomeSchema, 'Locked down; the report of the stop'),
        202: json(StopOutcomeSchema, 'Locked down; the stop is still running'),
        ...errorResponses(400, 401, 403, 503),
      },
    }),
    async (c) => {
      const outcome = await lockdown.emergencyStop(c.req.valid('json').reason, c.get('identity'));
      return c.json({ locked: true as const, ...outcome }, outcome.completed ? 200 : 202);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/resume',
      summary: 'Lift the lockdown (admin)',
      request: body(ReasonRequestSchema),
      responses: {
        200: json(z.object({ locked: z.literal(false), lifted: LockdownSchema, resumed_at: z.string() }), 'The lockdown is lifted'),
        ...errorResponses(400, 401, 403, 409, 503),
      },
    }),
    async (c) => c.json({ locked: false as const, ...(await lockdown.resume(c.req.valid('json').reason, c.get('identity'))) }, 200),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/lockdown',
      summary: 'Whether Warden is in lockdown: since when, by whom, why',
      responses: { 200: json(LockdownStateSchema, 'The lockdown state'), ...errorResponses(401, 503) },
    }),
    async (c) => {
      const state = await lockdown.state();
      return c.json(
        {
          locked: state !== null,
          since: state?.since ?? null,
          by: state?.by ?? null,
          by_name: state?.by_name ?? null,
          reason: state?.reason ?? null,
          stop_workflow_id: state ? stopWorkflowIdOf(state) : null,
          message: state ? lockdownMessage(state) : null,
        },
        200,
      );
    },
  );
  return app;
}
