/**
 * Approvals in Slack over HTTP, end to end: real Temporal, real Docker, real Bolt, and a local fake
 * Slack that posts signed block_actions to the API's /channels/slack/events over real HTTP, as Slack
 * does with a Request URL. The same channel service as Socket Mode's; requests Slack did not sign
 * (another secret, an old or future timestamp, no signature), and signed ones replayed, are refused
 * and change nothing; Slack's url_verification is answered only when signed.
 */
import { serve, type ServerType } from '@hono/node-server';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buttonData } from '../../channels/card.js';
import { startChannelStack } from '../support/channel-stack.js';
import { buttonValue, showsCompleted, startFakeSlack, type FakeSlack, type SlackSigning } from '../support/fake-slack.js';
import { waitFor } from '../support/helpers.js';

let fake: FakeSlack;
let env: Awaited<ReturnType<typeof startChannelStack>>;
let server: ServerType;
let requestUrl: string;
const ALICE = 'U00000ALICE';
const STRANGER = 'U0000STRANG';

const cardOf = (actionId: string) =>
  waitFor(`the card of ${actionId}`, async () => fake.messagesIn(fake.channelIds[0]!).find((m) => m.versions[0]!.includes(actionId)));
/** The audit log's decisions on an action: approvals granted, rejected or refused. */
const DECISIONS = ['approval.granted', 'approval.rejected', 'approval.refused'];
const decisionsOn = async (id: string) =>
  (await env.stack.audit.list({ action_id: id, limit: 1000 })).filter((e) => DECISIONS.includes(e.kind));

beforeAll(async () => {
  fake = await startFakeSlack();
  env = await startChannelStack({
    secrets: { SLACK_BOT_TOKEN: fake.botToken, SLACK_SIGNING_SECRET: fake.signingSecret },
    config: {
      slackBotTokenSecret: 'SLACK_BOT_TOKEN',
      slackMode: 'http',
      slackSigningSecretSecret: 'SLACK_SIGNING_SECRET',
      slackChannelIds: fake.channelIds,
      slackApiUrl: fake.apiUrl,
    },
    alice: `slack:${ALICE}`,
  });
  server = await new Promise<ServerType>((resolve) => {
    const s = serve({ fetch: env.stack.realApp.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s));
  });
  requestUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/channels/slack/events`;
});

afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  await env?.stop();
  await fake?.close();
});

describe('Slack approvals over HTTP', () => {
  it('full flow: the card appears, a paired approver presses Approve over HTTP, the command runs once, the card shows the result', async () => {
    expect(fake.sockets()).toBe(0);
    const submitted = await env.submit('echo ran >> /workspace/slack-http; wc -l < /workspace/slack-http');
    const { id, params_hash } = submitted.body;
    const card = await cardOf(id);
    expect(buttonValue(card, 'warden-approve')).toBe(buttonData(id, true, params_hash));

    const stranger = fake.pressOverHttp(requestUrl, STRANGER, card, buttonValue(card, 'warden-approve'));
    expect(await stranger.status).toBe(200);
    expect((await env.stack.api('GET', `/api/actions/${id}`)).body.approvals).toEqual([]);

    const alice = fake.pressOverHttp(requestUrl, ALICE, card, buttonValue(card, 'warden-approve'));
    expect(await alice.status).toBe(200);
    expect(await alice.ephemeral).toMatch(new RegExp(`Approved: ${id}`));
    await waitFor('the card to show the result', async () => showsCompleted(card));
    await env.expectRanOnceApprovedByAlice(id, 'slack');
    expect(await Promise.race([stranger.ephemeral, Promise.resolve(null)])).toBeNull();
  });

  it('a request Slack did not sign, or signed more than 5 minutes away from now, is refused and decides nothing', async () => {
    const submitted = await env.submit('echo forged');
    const { id } = submitted.body;
    const card = await cardOf(id);
    const now = Math.floor(Date.now() / 1000);
    const forgeries: Array<[string, SlackSigning]> = [
      ['another secret', { secret: 'not-the-signing-secret' }],
      ['a stale timestamp', { timestamp: now - 6 * 60 }],
      ['a timestamp ahead', { timestamp: now + 6 * 60 }],
      ['no signature', { unsigned: true }],
    ];
    for (const [forgery, signing] of forgeries) {
      // The forger claims to be a paired approver: only Slack's signature says who pressed.
      const press = fake.pressOverHttp(requestUrl, ALICE, card, buttonValue(card, 'warden-approve'), signing);
      expect(await press.status, forgery).toBe(401);
      expect(await Promise.race([press.ephemeral, Promise.resolve(null)]), forgery).toBeNull();
    }
    expect((await env.stack.api('GET', `/api/actions/${id}`)).body).toMatchObject({ status: 'pending', approvals: [] });
    expect(await decisionsOn(id)).toEqual([]);

    // The same press, signed by Slack, is taken: what refused the others was their signature.
    const signed = fake.pressOverHttp(requestUrl, ALICE, card, buttonValue(card, 'warden-reject'));
    expect(await signed.status).toBe(200);
    expect(await signed.ephemeral).toMatch(/Rejected/);
    expect((await decisionsOn(id)).map((e) => e.kind)).toEqual(['approval.rejected']);
  });

  it('a signed press replayed is refused: the action is decided, and audited, once', async () => {
    const { id } = (await env.submit('echo ran >> /workspace/slack-replay; wc -l < /workspace/slack-replay')).body;
    const card = await cardOf(id);
    const press = fake.pressOverHttp(requestUrl, ALICE, card, buttonValue(card, 'warden-approve'));
    expect(await press.status).toBe(200);
    expect(await press.ephemeral).toMatch(new RegExp(`Approved: ${id}`));
    // Within its 5 minutes, the same signature and timestamp: refused before Bolt sees it.
    expect(await press.replay()).toBe(401);
    await waitFor('the card to show the result', async () => showsCompleted(card));
    await env.expectRanOnceApprovedByAlice(id, 'slack');
    expect((await decisionsOn(id)).map((e) => e.kind)).toEqual(['approval.granted']);
  });

  it("answers Slack's url_verification with its challenge, only when Slack signed it", async () => {
    const signed = await fake.verifyUrl(requestUrl, 'challenge-signed');
    expect(signed.status).toBe(200);
    expect(JSON.parse(signed.body)).toEqual({ challenge: 'challenge-signed' });
    const now = Math.floor(Date.now() / 1000);
    for (const signing of [{ secret: 'not-the-signing-secret' }, { timestamp: now - 6 * 60 }, { unsigned: true }]) {
      const forged = await fake.verifyUrl(requestUrl, 'challenge-forged', signing);
      expect(forged.status, JSON.stringify(signing)).toBe(401);
      expect(forged.body).not.toContain('challenge-forged');
    }
  });

  it('the Telegram door is closed when Telegram is not in webhook mode', async () => {
    const res = await fetch(requestUrl.replace('/slack/events', '/telegram/webhook'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': fake.signingSecret },
      body: '{}',
    });
    expect(res.status).toBe(404);
  });
});
