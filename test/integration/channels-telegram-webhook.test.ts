/**
 * Approvals in Telegram by webhook, end to end: real Temporal, real Docker, real grammY, and a local
 * fake Bot API that posts updates to the API's /channels/telegram/webhook over real HTTP with the
 * secret token Warden gave setWebhook, as Telegram does. An update without that token, or with
 * another, is refused and changes nothing; one delivered twice is acknowledged and taken once.
 */
import { serve, type ServerType } from '@hono/node-server';
import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startChannelStack } from '../support/channel-stack.js';
import { startFakeTelegram, type FakeTelegram, type FakeTelegramMessage } from '../support/fake-telegram.js';
import { waitFor } from '../support/helpers.js';

let fake: FakeTelegram;
let env: Awaited<ReturnType<typeof startChannelStack>>;
let server: ServerType;
let webhookUrl: string;
const secretToken = randomBytes(32).toString('hex');
const ALICE = 700000001;
const STRANGER = 700000099;
const DECISIONS = ['approval.granted', 'approval.rejected', 'approval.refused'];

const cardOf = (actionId: string) =>
  waitFor(`the card of ${actionId}`, async () => fake.messagesIn(fake.chatIds[0]!).find((m) => m.versions[0]!.includes(actionId)));
const button = (message: FakeTelegramMessage, text: 'Approve' | 'Reject') => message.buttons.find((b) => b.text === text)!.callback_data;
const decisionsOn = async (id: string) =>
  (await env.stack.audit.list({ action_id: id, limit: 1000 })).filter((e) => DECISIONS.includes(e.kind));

/** A port free now: Telegram must be told the webhook's URL before the API that serves it starts. */
const freePort = () =>
  new Promise<number>((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });

beforeAll(async () => {
  fake = await startFakeTelegram();
  const port = await freePort();
  webhookUrl = `http://127.0.0.1:${port}/channels/telegram/webhook`;
  server = serve({ fetch: (request) => env.stack.realApp.fetch(request), hostname: '127.0.0.1', port });
  env = await startChannelStack({
    secrets: { TELEGRAM_BOT_TOKEN: fake.token, TELEGRAM_WEBHOOK_SECRET: secretToken },
    config: {
      telegramBotTokenSecret: 'TELEGRAM_BOT_TOKEN',
      telegramChatIds: fake.chatIds,
      telegramApiUrl: fake.apiRoot,
      telegramMode: 'webhook',
      telegramWebhookUrl: webhookUrl,
      telegramWebhookSecretSecret: 'TELEGRAM_WEBHOOK_SECRET',
    },
    alice: `telegram:${ALICE}`,
  });
});

afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  await env?.stop();
  await fake?.close();
});

describe('Telegram approvals by webhook', () => {
  it('full flow: setWebhook with the secret token, the card appears, a paired approver presses Approve, the command runs once, the card shows the result', async () => {
    expect(fake.webhook()).toEqual({ url: webhookUrl, secret_token: secretToken, allowed_updates: ['callback_query'] });
    const submitted = await env.submit('echo ran >> /workspace/tg-hook; wc -l < /workspace/tg-hook');
    const { id } = submitted.body;
    const card = await cardOf(id);

    expect(await fake.press(STRANGER, card, button(card, 'Approve'))).toBe('');
    expect((await env.stack.api('GET', `/api/actions/${id}`)).body.approvals).toEqual([]);

    expect(await fake.press(ALICE, card, button(card, 'Approve'))).toMatch(new RegExp(`Approved: ${id}`));
    await waitFor('the card to show the result', async () => card.buttons.length === 0 && /completed \(exit code 0\)/.test(card.text));
    await env.expectRanOnceApprovedByAlice(id, 'telegram');
    expect(fake.deliveries).toEqual([200, 200]);
  });

  it('an update without the secret token, or with another, is refused and decides nothing', async () => {
    const submitted = await env.submit('echo forged');
    const { id } = submitted.body;
    const card = await cardOf(id);
    const forgeries: Array<[string, Record<string, string>]> = [
      ['no secret token', {}],
      ['another secret token', { 'x-telegram-bot-api-secret-token': randomBytes(32).toString('hex') }],
      ['the token with one more character', { 'x-telegram-bot-api-secret-token': `${secretToken}0` }],
    ];
    for (const [forgery, headers] of forgeries) {
      // The forger claims to be a paired approver: only Telegram, which knows the token, says who pressed.
      const queryId = randomBytes(8).toString('hex');
      const update = {
        update_id: 900_000 + forgeries.findIndex(([f]) => f === forgery),
        callback_query: {
          id: queryId,
          from: { id: ALICE, is_bot: false, first_name: 'alice' },
          chat_instance: '1',
          data: button(card, 'Approve'),
        },
      };
      const res = await fetch(webhookUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(update),
      });
      expect(res.status, forgery).toBe(401);
      expect(fake.answeredQueries, forgery).not.toContain(queryId);
    }
    expect((await env.stack.api('GET', `/api/actions/${id}`)).body).toMatchObject({ status: 'pending', approvals: [] });
    expect(await decisionsOn(id)).toEqual([]);

    // The same press, delivered by Telegram with the token, is taken: what refused the others was the token.
    expect(await fake.press(ALICE, card, button(card, 'Reject'))).toMatch(/Rejected/);
    expect((await decisionsOn(id)).map((e) => e.kind)).toEqual(['approval.rejected']);
  });

  it('an update Telegram delivers twice is acknowledged both times and taken once', async () => {
    const { id } = (await env.submit('echo ran >> /workspace/tg-redelivered; wc -l < /workspace/tg-redelivered')).body;
    const card = await cardOf(id);
    expect(await fake.press(ALICE, card, button(card, 'Approve'))).toMatch(new RegExp(`Approved: ${id}`));
    const answered = fake.answeredQueries.length;
    expect(await fake.redeliverLast()).toBe(200);
    await waitFor('the card to show the result', async () => card.buttons.length === 0 && /completed \(exit code 0\)/.test(card.text));
    await env.expectRanOnceApprovedByAlice(id, 'telegram');
    // Taken again, it would have been answered "Already decided" and refused on the audit log.
    expect(fake.answeredQueries.length).toBe(answered);
    expect((await decisionsOn(id)).map((e) => e.kind)).toEqual(['approval.granted']);
  });

  it('the Slack door is closed when Slack is not in HTTP mode', async () => {
    const res = await fetch(webhookUrl.replace('/telegram/webhook', '/slack/events'), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(404);
  });
});
