/**
 * /channels: where Slack (HTTP mode) and Telegram (webhook mode) post button presses, on the API's
 * own port, beside the channel service that handles them and the grant key a decision needs.
 * These routes take no Warden key, as the platforms have none: each adapter checks its platform's
 * signature or secret before anything else, and a request that passes is only a press, which the
 * channel service weighs as any other (a paired person, their role, the workflow's own checks).
 */
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { WardenError } from '../../domain/errors.js';
import type { ChannelService } from '../../channels/service.js';
import { errorResponses, validationHook, type AppEnv } from '../openapi.js';

/** Each platform that can post to Warden: its route, and the setting that turns its HTTP mode on. */
const PLATFORM_ROUTES = [
  { name: 'slack', path: '/slack/events', platform: 'Slack', setting: 'WARDEN_SLACK_MODE=http' },
  { name: 'telegram', path: '/telegram/webhook', platform: 'Telegram', setting: 'WARDEN_TELEGRAM_MODE=webhook' },
] as const;

export function channelRequestsRouter(channels: Pick<ChannelService, 'receive'>) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  for (const { name, path, platform, setting } of PLATFORM_ROUTES) {
    app.openapi(
      createRoute({
        method: 'post',
        path,
        summary: `${platform} posts button presses here (${setting}); checked against ${platform}'s signature or secret, not a Warden key`,
        security: [],
        responses: {
          200: { description: "Acknowledged; Slack's url_verification is answered with its challenge as JSON" },
          ...errorResponses(400, 401, 404, 413, 503),
        },
      }),
      async (c) => {
        const response = await channels.receive(name, c.req.raw);
        if (!response) throw new WardenError('not_found', `${platform} does not post to Warden: its HTTP mode is off (${setting})`, 404);
        return response;
      },
    );
  }
  return app;
}
