/**
 * Slack over HTTP and Telegram by webhook through what breaks: the API process restarted (its
 * channel service with it), the worker process SIGKILLed, and the Temporal server stopped while a
 * button is pressed. Real Bolt and grammY against the local fakes, which post presses to the API's
 * routes over real HTTP; real Temporal (a dev server of this file's own), real Docker, worker
 * processes the test kills.
 */
import { serve, type ServerType } from '@hono/node-server';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { ChannelStore } from '../../stores/channel-store.js';
import { countingCommand, startBreakableChannelStack } from '../support/breakable-channel-stack.js';
import { buttonValue, showsCompleted, startFakeSlack, type FakeSlack, type FakeSlackMessage } from '../support/fake-slack.js';
import { startFakeTelegram, type FakeTelegram, type FakeTelegramMessage } from '../support/fake-telegram.js';
import { freePort } from '../support/global-setup.js';
import { waitFor } from '../support/helpers.js';

const SLACK_ALICE = 'U00000ALICE';
const TELEGRAM_ALICE = 700000001;
const DECISIONS = ['approval.granted', 'approval.rejected', 'approval.refused'];
let slack: FakeSlack;
let telegram: FakeTelegram;
let stack: Awaited<ReturnType<typeof startBreakableChannelStack>>;
let env: (typeof stack)['env'];
let channelStore: ChannelStore;
/** The API process the platforms' requests reach: replaced by a new one when the test restarts it. */
let app: (typeof env)['stack']['realApp'];
let server: ServerType;
let slackRequestUrl: string;

const slackCard = (id: string) =>
  waitFor(`the Slack card of ${id}`, async () => slack.messagesIn(slack.channelIds[0]!).find((m) => m.versions[0]!.includes(id)));
const telegramCard = (id: string) =>
  waitFor(`the Telegram card of ${id}`, async () => telegram.messagesIn(telegram.chatIds[0]!).find((m) => m.versions[0]!.includes(id)));

/** Alice presses a Slack card's button: the HTTP answer's status and the private answer. */
async function pressSlack(card: FakeSlackMessage, button: 'warden-approve' | 'warden-reject') {
  const press = slack.pressOverHttp(slackRequestUrl, SLACK_ALICE, card, buttonValue(card, button));
  return { status: await press.status, answer: await press.ephemeral };
}
/** Alice presses a Telegram card's button: the callback query's answer. */
const pressTelegram = (card: FakeTelegramMessage, text: 'Approve' | 'Reject') =>
  telegram.press(TELEGRAM_ALICE, card, card.buttons.find((b) => b.text === text)!.callback_data);

/** Both cards of the action closed on its completion. */
const settled = (id: string) =>
  waitFor(
    `the cards of ${id} to show the result`,
    async () => {
      const [s, t] = [await slackCard(id), await telegramCard(id)];
      return showsCompleted(s) && t.buttons.length === 0 && /completed \(exit code 0\)/.test(t.text);
    },
    90_000,
  );

const decisionsOn = async (id: string) =>
  (await stack.audit.list({ action_id: id, limit: 1000 })).filter((e) => DECISIONS.includes(e.kind));
const channelsConnected = async () => {
  const res = await app.request('/api/channels', { headers: { authorization: `Bearer ${env.operator.key}` } });
  return ((await res.json()) as { channels: Array<{ connected: boolean }> }).channels.every((c) => c.connected);
};

beforeAll(async () => {
  slack = await startFakeSlack();
  telegram = await startFakeTelegram();
  // Telegram is told the webhook's URL before the API that serves it starts.
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  slackRequestUrl = `${origin}/channels/slack/events`;
  server = serve({ fetch: (request) => app.fetch(request), hostname: '127.0.0.1', port });
  // On disk, as in the data dir: pairings and posted cards outlive the API process.
  channelStore = ChannelStore.open(join(mkdtempSync(join(tmpdir(), 'warden-channels-')), 'channels.db'));
  stack = await startBreakableChannelStack({
    secrets: {
      SLACK_BOT_TOKEN: slack.botToken,
      SLACK_SIGNING_SECRET: slack.signingSecret,
      TELEGRAM_BOT_TOKEN: telegram.token,
      TELEGRAM_WEBHOOK_SECRET: randomBytes(32).toString('hex'),
    },
    config: {
      slackBotTokenSecret: 'SLACK_BOT_TOKEN',
      slackMode: 'http',
      slackSigningSecretSecret: 'SLACK_SIGNING_SECRET',
      slackChannelIds: slack.channelIds,
      slackApiUrl: slack.apiUrl,
      telegramBotTokenSecret: 'TELEGRAM_BOT_TOKEN',
      telegramChatIds: telegram.chatIds,
      telegramApiUrl: telegram.apiRoot,
      telegramMode: 'webhook',
      telegramWebhookUrl: `${origin}/channels/telegram/webhook`,
      telegramWebhookSecretSecret: 'TELEGRAM_WEBHOOK_SECRET',
    },
    alice: [`slack:${SLACK_ALICE}`, `telegram:${TELEGRAM_ALICE}`],
    stack: { channelStore },
  });
  env = stack.env;
  app = env.stack.realApp;
}, 240_000);

afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  if (app !== env?.stack.realApp) await app?.channels.stop();
  await stack?.stop();
  channelStore?.close();
  await slack?.close();
  await telegram?.close();
});

// A test that failed with its worker killed leaves the next one a worker.
beforeEach(() => stack.ensureWorker());

/** Two actions, one to be approved from Slack and one from Telegram, their cards posted on both. */
async function submitOnePerPlatform(name: string) {
  const bySlack = (await env.submit(countingCommand(`slack-${name}`))).body.id as string;
  const byTelegram = (await env.submit(countingCommand(`telegram-${name}`))).body.id as string;
  await Promise.all([telegramCard(bySlack), slackCard(byTelegram)]);
  return { name, bySlack, byTelegram, slackOld: await slackCard(bySlack), telegramOld: await telegramCard(byTelegram) };
}

/** Alice approves each from its old card; each command runs once and both cards show it. */
async function approveOnePerPlatform(pending: Awaited<ReturnType<typeof submitOnePerPlatform>>) {
  const { name, bySlack, byTelegram } = pending;
  const slackPress = await pressSlack(pending.slackOld, 'warden-approve');
  expect(slackPress.status).toBe(200);
  expect(slackPress.answer).toMatch(new RegExp(`^Approved: ${bySlack}`));
  expect(await pressTelegram(pending.telegramOld, 'Approve')).toMatch(new RegExp(`^Approved: ${byTelegram}`));
  await settled(bySlack);
  await settled(byTelegram);
  await stack.expectRanOnce(bySlack, `slack-${name}`, 'slack');
  await stack.expectRanOnce(byTelegram, `telegram-${name}`, 'telegram');
}

it('after the API process restarts, the old Slack and Telegram buttons approve, and each command runs once', async () => {
  const pending = await submitOnePerPlatform('after-api');
  const posted = [slack.messagesIn(slack.channelIds[0]!).length, telegram.messagesIn(telegram.chatIds[0]!).length];

  await app.channels.stop();
  app = env.stack.newApp();
  await waitFor('the new API process to connect its channels', channelsConnected);

  await approveOnePerPlatform(pending);
  // The cards were edited in place: the new process found them in channels.db.
  expect([slack.messagesIn(slack.channelIds[0]!).length, telegram.messagesIn(telegram.chatIds[0]!).length]).toEqual(posted);
}, 240_000);

it('after a SIGKILL of the worker, the Slack and Telegram buttons approve, and each command runs once', async () => {
  const pending = await submitOnePerPlatform('after-kill');
  await stack.killWorker();
  await stack.restartWorker();
  await approveOnePerPlatform(pending);
}, 240_000);

it('with the Temporal server stopped, a press is acknowledged and told privately to try again; once it is back, the same button approves', async () => {
  const id = (await env.submit(countingCommand('temporal-down'))).body.id as string;
  const [slackOld, telegramOld] = [await slackCard(id), await telegramCard(id)];
  const shown = [slackOld.versions.length, telegramOld.versions.length];
  await stack.stopTemporal();

  const slackPress = await pressSlack(slackOld, 'warden-approve');
  expect(slackPress.status).toBe(200);
  expect(slackPress.answer).toMatch(new RegExp(`^Not delivered: .*your approval of ${id} was not recorded.*Try the button again`));
  expect(await pressTelegram(telegramOld, 'Approve')).toMatch(new RegExp(`^Not delivered: .*your approval of ${id} was not recorded`));
  // Nothing recorded: no decision on the log, the cards as they were, their buttons still there.
  expect(await decisionsOn(id)).toEqual([]);
  expect([slackOld.versions.length, telegramOld.versions.length]).toEqual(shown);
  expect(telegramOld.buttons.map((b) => b.text)).toEqual(['Approve', 'Reject']);

  await stack.startTemporal();
  // The API and the worker process reconnect on their own; the action is read again once they have.
  await waitFor(
    'the action to be read again',
    async () => (await env.as(env.operator.key, 'GET', `/api/actions/${id}`)).body.status === 'pending',
    120_000,
  );
  expect(await pressTelegram(telegramOld, 'Approve')).toMatch(new RegExp(`^Approved: ${id}`));
  await settled(id);
  await stack.expectRanOnce(id, 'temporal-down', 'telegram');
  expect((await decisionsOn(id)).map((e) => e.kind)).toEqual(['approval.granted']);
}, 240_000);
