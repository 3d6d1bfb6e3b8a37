/**
 * Slack through Bolt in Socket Mode: the app holds a WebSocket to Slack (no public URL), posts
 * cards with chat.postMessage and edits them with chat.update. A button press arrives as a
 * block_actions envelope, acknowledged at once; the verdict goes to the presser alone
 * (chat.postEphemeral). The presser is the envelope's user, as Slack says.
 */
import { App, LogLevel } from '@slack/bolt';
import type { ButtonClick, ChannelAdapter } from '../adapter.js';
import type { ApprovalCard } from '../card.js';
import { slackCardMessage } from './card.js';

export interface SlackSettings {
  /** The bot token (xoxb-) and the app-level token (xapp-, connections:write), read when connecting. */
  tokens: () => Promise<{ bot: string; app: string } | undefined>;
  /** The ids of the channels cards go to. */
  channelIds: string[];
  /** Slack's Web API base (`https://slack.com/api/` when unset). */
  apiUrl?: string;
}

export function slackAdapter(settings: SlackSettings): ChannelAdapter {
  let app: App | undefined;
  let connected = false;

  return {
    name: 'slack',
    rooms: settings.channelIds,
    async connect(onClick, onLost) {
      const tokens = await settings.tokens();
      if (!tokens) throw new Error('no bot or app token: the vault has no secret of the configured names');
      const current = new App({
        token: tokens.bot,
        appToken: tokens.app,
        socketMode: true,
        logLevel: LogLevel.ERROR,
        ...(settings.apiUrl ? { clientOptions: { slackApiUrl: settings.apiUrl } } : {}),
      });
      app = current;
      current.action(/^warden-(approve|reject)$/, async ({ ack, body, action, client }) => {
        const channel = 'channel' in body ? body.channel?.id : undefined;
        const click: ButtonClick = {
          platform_user: `slack:${body.user.id}`,
          data: 'value' in action && typeof action.value === 'string' ? action.value : '',
          ignore: async () => void (await ack()),
          defer: async () => void (await ack()),
          answer: async (text) => {
            if (channel) await client.chat.postEphemeral({ channel, user: body.user.id, text });
          },
        };
        // Not awaited: Bolt's listener returns once the envelope is acknowledged.
        void onClick(click);
      });
      current.error(async (err) => onLost(err));
      await current.start();
      connected = true;
    },
    async disconnect() {
      const current = app;
      app = undefined;
      connected = false;
      await current?.stop().catch(() => undefined);
    },
    isConnected: () => connected && app !== undefined,
    async postCard(room: string, card: ApprovalCard) {
      if (!app) throw new Error('Slack is not connected');
      const res = await app.client.chat.postMessage({ channel: room, ...slackCardMessage(card) });
      if (!res.ts) throw new Error(`Slack did not say which message it posted in ${room}`);
      return res.ts;
    },
    async editCard(room: string, messageId: string, card: ApprovalCard) {
      if (!app) throw new Error('Slack is not connected');
      await app.client.chat.update({ channel: room, ts: messageId, ...slackCardMessage(card) });
    },
  };
}
