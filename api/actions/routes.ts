/** /api/actions: submit, inspect, list pending, approve or reject. */
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import { ActionRecordSchema, ApproveActionRequestSchema, submitActionRequestSchema } from '../../domain/action.js';
import { SKILLS } from '../../skills/index.js';
import { ActionSummarySchema, type ActionService } from './service.js';
import { requireRole } from '../middleware/auth.js';
import { errorResponses, jsonBody as body, jsonResponse as json, validationHook, type AppEnv } from '../openapi.js';

const ActionIdParams = z.object({ id: z.string().regex(/^act-[0-9a-f]{16}$/, 'id: act- followed by 16 hex digits') });

const SubmittedSchema = ActionRecordSchema.extend({
  action_id: z.string(),
  requires_approval: z.boolean(),
});

export function actionsRouter(actions: ActionService) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.on('POST', '/', requireRole('operator'));
  app.on('POST', '/:id/approve', requireRole('approver'));

  app.openapi(
    createRoute({
      method: 'post',
      path: '/',
      summary: 'Submit an action: validated, screened, judged by the policy, then run or held for approval',
      request: body(submitActionRequestSchema(SKILLS)),
      responses: { 202: json(SubmittedSchema, 'The action as it stands'), ...errorResponses(400, 401, 403, 404, 422, 503) },
    }),
    async (c) => {
      const action = await actions.submitAction(c.req.valid('json'), c.get('identity'));
      return c.json({ ...action, action_id: action.id, requires_approval: action.status === 'pending' }, 202);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/pending',
      summary: 'Actions awaiting approval (Temporal visibility: they survive restarts)',
      request: { query: z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) }).strict() },
      responses: {
        200: json(z.object({ actions: z.array(ActionSummarySchema) }), 'Pending actions, newest first'),
        ...errorResponses(400, 401),
      },
    }),
    async (c) => c.json({ actions: await actions.pendingActions(c.req.valid('query').limit) }, 200),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}',
      summary: "An action's record: status, level, rule, approvals, result",
      request: { params: ActionIdParams },
      responses: { 200: json(ActionRecordSchema, 'The action'), ...errorResponses(400, 401, 404, 503) },
    }),
    async (c) => c.json(await actions.getAction(c.req.valid('param').id), 200),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/approve',
      summary: 'Approve or reject (approver role); binds to the params_hash you reviewed',
      request: { params: ActionIdParams, ...body(ApproveActionRequestSchema) },
      responses: {
        200: json(z.object({ action_id: z.string(), status: z.string() }), 'Decision recorded'),
        ...errorResponses(400, 401, 403, 404, 409, 503),
      },
    }),
    async (c) => c.json(await actions.decideAction(c.req.valid('param').id, c.get('identity'), c.req.valid('json')), 200),
  );
  return app;
}
