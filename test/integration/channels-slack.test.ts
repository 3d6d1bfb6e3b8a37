/**
 * Approvals in Slack, end to end: real Temporal, real Docker, and real Bolt in Socket Mode talking
 * to a local fake Slack (Web API and Socket Mode WebSocket). The same channel service as Discord's.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buttonData } from '../../channels/card.js';
import type { ActionRecord } from '../../domain/action.js';
import { openVault } from '../../stores/vault.js';
import { startFakeSlack, type FakeSlack, type FakeSlackMessage } from '../support/fake-slack.js';
import { startStack, uniqueId, waitFor, waitForStatus } from '../support/helpers.js';

type Stack = Awaited<ReturnType<typeof startStack>>;
let stack: Stack;
let fake: FakeSlack;
let agentId: string;
const ALICE = 'U00000ALICE';
const STRANGER = 'U0000STRANG';
const key: Record<'operator' | 'alice', { key: string; id: string }> = {} as never;

async function as(who: string, method: string, path: string, body?: unknown) {
  const headers: Record<string, string> = { authorization: `Bearer ${who}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await stack.realApp.request(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as any };
}

const cardOf = (actionId: string) =>
  waitFor(`the card of ${actionId}`, async () => fake.messagesIn(fake.channelIds[0]!).find((m) => m.versions[0]!.includes(actionId)));
const valueOf = (message: FakeSlackMessage, actionId: 'warden-approve' | 'warden-reject') =>
  message.blocks.flatMap((b) => b.elements ?? []).find((e) => e.action_id === actionId)!.value!;

beforeAll(async () => {
  fake = await startFakeSlack();
  const vault = openVault({ dataDir: mkdtempSync(join(tmpdir(), 'warden-vault-')) });
  vault.put('SLACK_BOT_TOKEN', fake.botToken);
  vault.put('SLACK_APP_TOKEN', fake.appToken);
  stack = await startStack({
    vault,
    config: {
      slackBotTokenSecret: 'SLACK_BOT_TOKEN',
      slackAppTokenSecret: 'SLACK_APP_TOKEN',
      slackChannelIds: fake.channelIds,
      slackApiUrl: fake.apiUrl,
      channelPollSeconds: 0.5,
    },
  });
  for (const [name, role] of [
    ['operator', 'operator'],
    ['alice', 'approver'],
  ] as const) {
    const made = stack.keys.create(name, role, null);
    key[name] = { key: made.key, id: made.id };
  }
  expect((await stack.api('POST', '/api/channels/pairings', { platform_user: `slack:${ALICE}`, key_id: key.alice.id })).status).toBe(201);
  expect((await as(key.alice.key, 'POST', `/api/channels/pairings/slack:${ALICE}/confirm`)).status).toBe(200);
  agentId = uniqueId('slack');
  expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: agentId, runtime: 'runc' })).status).toBe(201);
  await waitForStatus(stack.api, agentId, ['running']);
  await waitFor('Slack to be connected', async () => (await stack.api('GET', '/api/channels')).body.channels[0].connected);
});

afterAll(async () => {
  await stack?.api('POST', `/api/agents/${agentId}/stop`, { force: true });
  await stack?.stop();
  await fake?.close();
});

describe('Slack approvals', () => {
  it('full flow: the card appears, a stranger is ignored, a paired approver presses Approve, the command runs once, the card shows the result', async () => {
    const submitted = await as(key.operator.key, 'POST', '/api/actions', {
      action_type: 'skill_execution',
      skill_id: 'shell',
      operation: 'exec',
      agent_id: agentId,
      parameters: { command: 'echo ran >> /workspace/slack; wc -l < /workspace/slack' },
    });
    const { id, params_hash } = submitted.body;
    const card = await cardOf(id);
    expect(card.versions[0]).toContain('echo ran &gt;&gt; /workspace/slack');
    expect(valueOf(card, 'warden-approve')).toBe(buttonData(id, true, params_hash));

    const stranger = fake.press(STRANGER, card, valueOf(card, 'warden-approve'));
    await stranger.acked;
    expect((await stack.api('GET', `/api/actions/${id}`)).body.approvals).toEqual([]);

    const alice = fake.press(ALICE, card, valueOf(card, 'warden-approve'));
    await alice.acked;
    expect(await alice.ephemeral).toMatch(new RegExp(`Approved: ${id}`));
    await waitFor('the card to show the result', async () => {
      const last = card.versions.at(-1)!;
      return !last.includes('warden-approve') && /completed \(exit code 0\)/.test(last);
    });
    const done = (await stack.api('GET', `/api/actions/${id}`)).body as ActionRecord;
    expect(done.result?.stdout.trim()).toBe('1');
    expect(done.approvals.map((a) => [a.approver.key_id, a.comment])).toEqual([[key.alice.id, 'via slack']]);
  });
});
