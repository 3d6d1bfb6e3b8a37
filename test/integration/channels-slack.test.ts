/**
 * Approvals in Slack, end to end: real Temporal, real Docker, and real Bolt in Socket Mode talking
 * to a local fake Slack (Web API and Socket Mode WebSocket). The same channel service as Discord's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buttonData } from '../../channels/card.js';
import { startChannelStack } from '../support/channel-stack.js';
import { buttonValue, showsCompleted, startFakeSlack, type FakeSlack } from '../support/fake-slack.js';
import { waitFor } from '../support/helpers.js';

let fake: FakeSlack;
let env: Awaited<ReturnType<typeof startChannelStack>>;
const ALICE = 'U00000ALICE';
const STRANGER = 'U0000STRANG';

const cardOf = (actionId: string) =>
  waitFor(`the card of ${actionId}`, async () => fake.messagesIn(fake.channelIds[0]!).find((m) => m.versions[0]!.includes(actionId)));

beforeAll(async () => {
  fake = await startFakeSlack();
  env = await startChannelStack({
    secrets: { SLACK_BOT_TOKEN: fake.botToken, SLACK_APP_TOKEN: fake.appToken },
    config: {
      slackBotTokenSecret: 'SLACK_BOT_TOKEN',
      slackAppTokenSecret: 'SLACK_APP_TOKEN',
      slackChannelIds: fake.channelIds,
      slackApiUrl: fake.apiUrl,
    },
    alice: `slack:${ALICE}`,
  });
});

afterAll(async () => {
  await env?.stop();
  await fake?.close();
});

describe('Slack approvals', () => {
  it('full flow: the card appears, a stranger is ignored, a paired approver presses Approve, the command runs once, the card shows the result', async () => {
    const submitted = await env.submit('echo ran >> /workspace/slack; wc -l < /workspace/slack');
    const { id, params_hash } = submitted.body;
    const card = await cardOf(id);
    expect(card.versions[0]).toContain('echo ran &gt;&gt; /workspace/slack');
    expect(buttonValue(card, 'warden-approve')).toBe(buttonData(id, true, params_hash));

    const stranger = fake.press(STRANGER, card, buttonValue(card, 'warden-approve'));
    await stranger.acked;
    expect((await env.stack.api('GET', `/api/actions/${id}`)).body.approvals).toEqual([]);

    const alice = fake.press(ALICE, card, buttonValue(card, 'warden-approve'));
    await alice.acked;
    expect(await alice.ephemeral).toMatch(new RegExp(`Approved: ${id}`));
    await waitFor('the card to show the result', async () => showsCompleted(card));
    await env.expectRanOnceApprovedByAlice(id, 'slack');
    // The stranger's press, long handled by now, was answered with nothing (an approver's gets a verdict).
    expect(await Promise.race([stranger.ephemeral, Promise.resolve(null)])).toBeNull();
  });
});
