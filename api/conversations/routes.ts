/**
 * /api/conversations and the seed's /api/chat: talk to a model bound to an agent, whose tool calls
 * become actions of the caller. Operators and above converse; each conversation is its owner's
 * (and an admin's) to read and to send to.
 */
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import { AgentIdSchema } from '../../domain/agent.js';
import { ConversationSchema, ConversationSummarySchema, TurnSchema, type Turn } from '../../domain/conversation.js';
import { WardenError } from '../../domain/errors.js';
import { requireRole } from '../middleware/auth.js';
import { errorResponses, jsonBody as body, jsonResponse as json, validationHook, type AppEnv } from '../openapi.js';
import { CONVERSATION_EVENT_KINDS, type ConversationEvents } from './events.js';
import { DEFAULT_MAX_STEPS, type ConversationService } from './service.js';

export const ConversationIdSchema = z.string().regex(/^cnv-[0-9a-f]{16}$/, 'conversation id: cnv- followed by 16 hex digits');
const IdParams = z.object({ id: ConversationIdSchema });
export const MessageSchema = z.string().min(1, 'message: some text').max(32_000);
const WaitSchema = z.number().min(0).max(300);

const ListQuerySchema = z
  .object({
    agent_id: AgentIdSchema.optional().describe("Only this agent's conversations."),
    limit: z.coerce.number().int().min(1).max(200).default(50),
  })
  .strict();

export const NewConversationSchema = z
  .object({
    agent_id: AgentIdSchema,
    provider: z.string().min(1).optional().describe('A configured provider (GET /api/providers); the first one when absent.'),
    model: z.string().min(1).optional().describe("The provider's default model when absent."),
    max_steps: z
      .number()
      .int()
      .min(1)
      .max(50)
      .default(DEFAULT_MAX_STEPS)
      .describe('Model calls a turn may make before it stops without an answer.'),
  })
  .strict();

const SendSchema = z
  .object({
    message: MessageSchema,
    wait_seconds: WaitSchema.default(0).describe('Wait up to this long for the turn to end (approvals may take longer).'),
  })
  .strict();

const ChatSchema = z
  .object({
    message: MessageSchema,
    agent_id: AgentIdSchema.optional().describe('Starts a new conversation with this agent (when conversation_id is absent).'),
    model: z.string().min(1).optional(),
    conversation_id: ConversationIdSchema.optional().describe('Carries on this conversation.'),
    wait_seconds: WaitSchema.default(60),
  })
  .strict();

const ChatAnswerSchema = z.object({
  conversation_id: z.string(),
  turn: z.number(),
  status: TurnSchema.shape.status,
  reply: z.string().nullable(),
  actions: TurnSchema.shape.actions,
  error: z.string().nullable(),
});

export function conversationsRouter(conversations: ConversationService, events: ConversationEvents) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  // A viewer reads what others do; conversing makes actions, an operator's part.
  // Mounted under /api beside other routers: the role applies to these paths only.
  for (const path of ['/conversations', '/conversations/*', '/chat']) app.use(path, requireRole('operator'));

  app.openapi(
    createRoute({
      method: 'post',
      path: '/conversations',
      summary: "Start a conversation with a model, bound to an agent: the model's tools are the agent's skill's operations",
      request: body(NewConversationSchema),
      responses: { 201: json(ConversationSchema, 'The new conversation'), ...errorResponses(400, 401, 403, 404, 409, 422, 503) },
    }),
    async (c) => c.json(await conversations.createConversation(c.req.valid('json'), c.get('identity')), 201),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/conversations',
      summary: "The caller's conversations (an admin's: everyone's), newest first, with their agent, owner, state and last activity",
      request: { query: ListQuerySchema },
      responses: {
        200: json(z.object({ conversations: z.array(ConversationSummarySchema) }), 'The conversations'),
        ...errorResponses(400, 401, 403, 503),
      },
    }),
    async (c) => c.json({ conversations: await conversations.listConversations(c.get('identity'), c.req.valid('query')) }, 200),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/conversations/{id}',
      summary: 'A conversation: its turns, the actions each produced, the transcript and the tokens used',
      request: { params: IdParams },
      responses: { 200: json(ConversationSchema, 'The conversation'), ...errorResponses(400, 401, 403, 404, 503) },
    }),
    async (c) => c.json(await conversations.getConversation(c.req.valid('param').id, c.get('identity')), 200),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/conversations/{id}/events',
      summary:
        "The conversation's events as Server-Sent Events, as they happen: messages, the model's text, tool calls, approval requests and decisions, actions' statuses, tool results, turn ends; the stream ends with the conversation",
      request: {
        params: IdParams,
        headers: z.object({
          'last-event-id': z.string().max(200).optional().describe("Resume: the events from this id's transcript position on."),
        }),
      },
      responses: {
        200: {
          description: `text/event-stream; event types: ${CONVERSATION_EVENT_KINDS.join(', ')}; each data is a JSON object`,
          // Each event as a client parses it (what Schemathesis checks each event of the stream against).
          content: {
            'text/event-stream': {
              schema: z.object({
                event: z.enum(CONVERSATION_EVENT_KINDS).optional(),
                data: z.string().describe('a JSON object'),
                id: z.string().optional(),
              }),
            },
          },
        },
        ...errorResponses(400, 401, 403, 404, 429, 503),
      },
    }),
    async (c) => events.open(c, c.req.valid('param').id, c.get('identity'), c.req.valid('header')['last-event-id']),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/conversations/{id}/messages',
      summary: 'Send a message: a turn starts; with wait_seconds, its answer and actions once it ends',
      request: { params: IdParams, ...body(SendSchema) },
      responses: { 202: json(TurnSchema, 'The turn as it stands'), ...errorResponses(400, 401, 403, 404, 409, 503) },
    }),
    async (c) => {
      const { message, wait_seconds } = c.req.valid('json');
      return c.json(await conversations.sendMessage(c.req.valid('param').id, message, c.get('identity'), wait_seconds), 202);
    },
  );

  for (const [what, summary] of [
    ['cancel', 'Cancel the running turn: its actions awaiting approval are cancelled, and the model is not called again'],
    ['end', 'End the conversation (its running turn is cancelled first)'],
  ] as const) {
    app.openapi(
      createRoute({
        method: 'post',
        path: `/conversations/{id}/${what}`,
        summary,
        request: { params: IdParams },
        responses: {
          202: json(z.object({ id: z.string(), requested: z.literal(what) }), 'Asked'),
          ...errorResponses(400, 401, 403, 404, 409, 503),
        },
      }),
      async (c) => {
        const { id } = c.req.valid('param');
        await conversations.stop(id, what, c.get('identity'));
        return c.json({ id, requested: what }, 202);
      },
    );
  }

  app.openapi(
    createRoute({
      method: 'post',
      path: '/chat',
      summary:
        "One message, answered: a new conversation with agent_id, or the next turn of conversation_id; the model's reply and the actions the turn produced",
      request: body(ChatSchema),
      responses: { 200: json(ChatAnswerSchema, 'The turn'), ...errorResponses(400, 401, 403, 404, 409, 422, 503) },
    }),
    async (c) => {
      const { message, agent_id, model, conversation_id, wait_seconds } = c.req.valid('json');
      const who = c.get('identity');
      if (!conversation_id && !agent_id)
        throw new WardenError(
          'invalid_request',
          'name the agent to talk to (agent_id) or the conversation to carry on (conversation_id)',
          400,
        );
      const id =
        conversation_id ??
        (await conversations.createConversation({ agent_id: agent_id!, ...(model ? { model } : {}), max_steps: DEFAULT_MAX_STEPS }, who))
          .id;
      const turn: Turn = await conversations.sendMessage(id, message, who, wait_seconds);
      return c.json(
        { conversation_id: id, turn: turn.turn, status: turn.status, reply: turn.reply, actions: turn.actions, error: turn.error },
        200,
      );
    },
  );

  return app;
}
