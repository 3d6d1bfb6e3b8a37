/**
 * Approvals in Telegram, end to end: real Temporal, real Docker, and real grammY long-polling a
 * local fake Bot API. The same channel service as Discord's, with buttons that carry a digest of
 * the params hash (Telegram's callback data holds 64 bytes).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buttonData } from '../../channels/card.js';
import type { ActionRecord } from '../../domain/action.js';
import { startChannelStack } from '../support/channel-stack.js';
import { startFakeTelegram, type FakeTelegram, type FakeTelegramMessage } from '../support/fake-telegram.js';
import { waitFor } from '../support/helpers.js';

let fake: FakeTelegram;
let env: Awaited<ReturnType<typeof startChannelStack>>;
const ALICE = 700000001;
const STRANGER = 700000099;

const cardOf = (actionId: string) =>
  waitFor(`the card of ${actionId}`, async () => fake.messagesIn(fake.chatIds[0]!).find((m) => m.versions[0]!.includes(actionId)));

const button = (message: FakeTelegramMessage, text: 'Approve' | 'Reject') => message.buttons.find((b) => b.text === text)!.callback_data;

beforeAll(async () => {
  fake = await startFakeTelegram();
  env = await startChannelStack({
    secrets: { TELEGRAM_BOT_TOKEN: fake.token },
    config: { telegramBotTokenSecret: 'TELEGRAM_BOT_TOKEN', telegramChatIds: fake.chatIds, telegramApiUrl: fake.apiRoot },
    alice: `telegram:${ALICE}`,
  });
});

afterAll(async () => {
  await env?.stop();
  await fake?.close();
});

describe('Telegram approvals', () => {
  it('full flow: the card appears, a paired approver presses Approve, the command runs once, the card shows the result', async () => {
    const submitted = await env.submit("echo '<b>ran</b>' >> /workspace/tg; wc -l < /workspace/tg");
    const { id, params_hash } = submitted.body;
    const card = await cardOf(id);
    // Escaped HTML: the parameters cannot format the card.
    expect(card.text).toContain("echo '&lt;b&gt;ran&lt;/b&gt;'");
    expect(button(card, 'Approve')).toBe(buttonData(id, true, params_hash, 32));
    expect(Buffer.byteLength(button(card, 'Approve'))).toBeLessThanOrEqual(64);

    expect(await fake.press(STRANGER, card, button(card, 'Approve'))).toBe('');
    expect((await env.stack.api('GET', `/api/actions/${id}`)).body.approvals).toEqual([]);

    expect(await fake.press(ALICE, card, button(card, 'Approve'))).toMatch(new RegExp(`Approved: ${id}`));
    await waitFor('the card to show the result', async () => card.buttons.length === 0 && /completed \(exit code 0\)/.test(card.text));
    const done = (await env.stack.api('GET', `/api/actions/${id}`)).body as ActionRecord;
    expect(done.result?.stdout.trim()).toBe('1');
    expect(done.approvals.map((a) => a.comment)).toEqual(['via telegram']);
    expect(await fake.press(ALICE, card, buttonData(id, true, params_hash, 32))).toMatch(/Already decided/);
  });

  it('a digest that is not the start of the action’s params hash is refused and changes nothing', async () => {
    const submitted = await env.submit('echo digest');
    const { id, params_hash } = submitted.body;
    const card = await cardOf(id);
    const forged = buttonData(id, true, `${params_hash[0] === '0' ? '1' : '0'}${params_hash.slice(1)}`, 32);
    expect(await fake.press(ALICE, card, forged)).toMatch(/Not allowed: the parameters hash does not match/);
    expect((await env.stack.api('GET', `/api/actions/${id}`)).body).toMatchObject({ status: 'pending', approvals: [] });
    expect(await fake.press(ALICE, card, button(card, 'Reject'))).toMatch(/Rejected/);
    await waitFor('the card to show the rejection', async () => card.buttons.length === 0 && card.text.includes('Rejected by alice'));
  });
});
