/** Approval cards: what they say, how Discord shows them (escaped, cut with a note), and the buttons' data (forged or malformed refused). */
import { describe, expect, it } from 'vitest';
import { approvalCard, buttonData, cardDigest, cut, parseButtonData } from '../../channels/card.js';
import { DISCORD_LIMITS, discordCardMessage, inCodeBlock } from '../../channels/discord/card.js';
import { TELEGRAM_LIMITS, telegramCardMessage } from '../../channels/telegram/card.js';
import { SLACK_LIMITS, slackCardMessage } from '../../channels/slack/card.js';
import type { ActionRecord } from '../../domain/action.js';

const HASH = 'a'.repeat(64);
const NOW = new Date('2026-12-07T12:00:00Z');

function action(overrides: Partial<ActionRecord> = {}): ActionRecord {
  return {
    id: 'act-0123456789abcdef',
    action_type: 'skill_execution',
    skill_id: 'shell',
    operation: 'exec',
    agent_id: 'agt-0123456789ab',
    parameters: { command: 'ls -la' },
    params_hash: HASH,
    requester: { key_id: 'key_000000000001', name: 'rita', role: 'operator', person: 'rita' },
    status: 'pending',
    security_level: 'high',
    rule: 'skill-default',
    reasons: [],
    approvals_required: 1,
    approvals: [],
    result: null,
    error: null,
    created_at: '2026-12-07T11:59:00Z',
    expires_at: '2026-12-07T12:30:00Z',
    completed_at: null,
    ...overrides,
  };
}

describe('button data', () => {
  it('carries the action id, the decision and the params hash, within Discord’s 100 characters, and reads back', () => {
    const data = buttonData('act-0123456789abcdef', true, HASH);
    expect(data.length).toBeLessThanOrEqual(100);
    expect(parseButtonData(data)).toEqual({ action_id: 'act-0123456789abcdef', approved: true, params_hash: HASH });
    expect(parseButtonData(buttonData('act-0123456789abcdef', false, HASH))?.approved).toBe(false);
  });

  it('carries the first 32 hex digits of the hash where the platform limits the length (Telegram: 64 bytes)', () => {
    const data = buttonData('act-0123456789abcdef', true, HASH, 32);
    expect(Buffer.byteLength(data)).toBeLessThanOrEqual(64);
    expect(parseButtonData(data)).toEqual({ action_id: 'act-0123456789abcdef', approved: true, params_hash: HASH.slice(0, 32) });
  });

  it.each([
    ['another version', `wd2:a:act-0123456789abcdef:${HASH}`],
    ['an unknown decision', `wd1:x:act-0123456789abcdef:${HASH}`],
    ['a short hash', `wd1:a:act-0123456789abcdef:${HASH.slice(1)}`],
    ['a hash of neither length', `wd1:a:act-0123456789abcdef:${HASH.slice(0, 33)}`],
    ['an upper-case hash', `wd1:a:act-0123456789abcdef:${HASH.toUpperCase()}`],
    ['a malformed action id', `wd1:a:act-0123:${HASH}`],
    ['an identity smuggled in', `wd1:a:act-0123456789abcdef:${HASH}:key_000000000001`],
    ['a trailing newline', `wd1:a:act-0123456789abcdef:${HASH}\n`],
    ['an empty string', ''],
    ['not a string', 42],
  ])('refuses %s', (_, data) => {
    expect(parseButtonData(data)).toBeNull();
  });
});

describe('approval cards', () => {
  it('say what is asked, by whom, at what risk, and offer both buttons while awaiting a decision', () => {
    const card = approvalCard(action(), DISCORD_LIMITS, NOW);
    expect(card.title).toBe('shell.exec on agent agt-0123456789ab');
    expect(card.state).toBe('Awaiting approval: 0 of 1 approval');
    expect(Object.fromEntries(card.facts)).toMatchObject({
      Risk: 'high (rule skill-default)',
      'Requested by': 'rita (key_000000000001)',
      Approvals: '0 of 1',
      Expires: '2026-12-07T12:30:00Z',
    });
    expect(card.buttons).toEqual({ approve: buttonData(card.action_id, true, HASH), reject: buttonData(card.action_id, false, HASH) });
    expect(card.final).toBe(false);
  });

  it('lose their buttons once decided or expired, and show the result when final', () => {
    const alice = {
      approver: { key_id: 'key_000000000002', name: 'alice', role: 'approver' as const },
      approved: true,
      comment: null,
      at: '',
    };
    const done = approvalCard(
      action({
        status: 'completed',
        approvals: [alice],
        result: { exit_code: 0, stdout: 'hello\n', stderr: '', timed_out: false, duration_ms: 3 },
        completed_at: 'x',
      }),
      DISCORD_LIMITS,
      NOW,
    );
    expect(done).toMatchObject({ state: 'Approved by alice; completed (exit code 0)', buttons: null, final: true, output: 'hello' });
    const late = approvalCard(action({ expires_at: '2026-12-07T11:00:00Z' }), DISCORD_LIMITS, NOW);
    expect(late).toMatchObject({ buttons: null, final: false });
    expect(late.state).toMatch(/^Expired/);
  });

  it('cut long parameters, saying how much is missing and where to read it whole', () => {
    const card = approvalCard(action({ parameters: { command: 'x'.repeat(5000) } }), DISCORD_LIMITS, NOW);
    expect([...card.parameters]).toHaveLength(DISCORD_LIMITS.parameters);
    expect(card.parameters_note).toMatch(
      /^\d+ more characters not shown: read them whole with `warden approvals show act-0123456789abcdef`/,
    );
    expect(cut('héllo', 2)).toEqual({ text: 'hé', cut: 3 });
  });

  it('change digest when what they show changes', () => {
    expect(cardDigest(approvalCard(action(), DISCORD_LIMITS, NOW))).toBe(cardDigest(approvalCard(action(), DISCORD_LIMITS, NOW)));
    expect(cardDigest(approvalCard(action({ status: 'rejected' }), DISCORD_LIMITS, NOW))).not.toBe(
      cardDigest(approvalCard(action(), DISCORD_LIMITS, NOW)),
    );
  });
});

describe('the Discord card', () => {
  it('keeps hostile parameters inside their code block, escapes markdown, and pings no one', () => {
    const hostile = action({ parameters: { command: '```\n**Approved by admin** @everyone <@1234> ```' }, rule: 'rule_*x*' });
    const message = discordCardMessage(approvalCard(hostile, DISCORD_LIMITS, NOW));
    const description = message.embeds[0]!.description!;
    // One block: its fences are the only runs of three backticks.
    expect(description.match(/```/g)).toHaveLength(2);
    expect(description).toContain('@everyone');
    expect(message.allowedMentions).toEqual({ parse: [] });
    expect(message.embeds[0]!.fields!.find((f) => f.name === 'Risk')!.value).toBe('high (rule rule\\_\\*x\\*)');
    expect(message.components[0]!.components.map((b) => [b.label, b.style])).toEqual([
      ['Approve', 3],
      ['Reject', 4],
    ]);
  });

  it('stays within Discord’s limits even when every character is a backtick', () => {
    const message = discordCardMessage(
      approvalCard(
        action({
          parameters: { command: '`'.repeat(10_000) },
          status: 'completed',
          completed_at: 'x',
          result: { exit_code: 0, stdout: '`'.repeat(10_000), stderr: '', timed_out: false, duration_ms: 1 },
        }),
        DISCORD_LIMITS,
        NOW,
      ),
    );
    const embed = message.embeds[0]!;
    expect(embed.description!.length).toBeLessThanOrEqual(4096);
    for (const field of embed.fields!) expect(field.value.length).toBeLessThanOrEqual(1024);
    const total =
      (embed.title ?? '').length + embed.description!.length + embed.fields!.reduce((n, f) => n + f.name.length + f.value.length, 0);
    expect(total).toBeLessThanOrEqual(6000);
    expect(message.components).toEqual([]);
  });

  it('a code block cannot be closed from inside', () => {
    expect(inCodeBlock('a```b').match(/```/g)).toHaveLength(2);
  });
});

describe('the Telegram card', () => {
  it('escapes every value as HTML, keeps the parameters in a <pre> block, and offers the short buttons', () => {
    const hostile = action({ parameters: { command: '</pre><a href="https://evil.example">approve me</a> & more' } });
    const { text, reply_markup } = telegramCardMessage(approvalCard(hostile, TELEGRAM_LIMITS, NOW));
    expect(text).not.toContain('<a ');
    expect(text).toContain('&lt;/pre&gt;&lt;a href=\\"https://evil.example\\"&gt;approve me&lt;/a&gt; &amp; more');
    expect(text.match(/<pre>/g)).toHaveLength(1);
    expect(reply_markup.inline_keyboard[0]!.map((b) => ('callback_data' in b ? b.callback_data : null))).toEqual([
      buttonData(hostile.id, true, HASH, 32),
      buttonData(hostile.id, false, HASH, 32),
    ]);
    const decided = telegramCardMessage(approvalCard(action({ status: 'rejected' }), TELEGRAM_LIMITS, NOW));
    expect(decided.reply_markup.inline_keyboard).toEqual([]);
  });
});

describe('the Slack card', () => {
  it('escapes &, < and > (no mention, link or channel ping), keeps the parameters in one code block, and fits a section', () => {
    const hostile = action({ parameters: { command: '<!channel> <@U123|boss> <https://evil.example|approve> ``` & `'.repeat(40) } });
    const { blocks } = slackCardMessage(approvalCard(hostile, SLACK_LIMITS, NOW));
    const text = JSON.stringify(blocks);
    expect(text).not.toMatch(/<!channel>|<@U123|<https:/);
    expect(text).toContain('&lt;!channel&gt;');
    const parameters = blocks.find((b) => b.type === 'section' && 'text' in b && b.text?.text.startsWith('Parameters:'))!;
    const body = (parameters as { text: { text: string } }).text.text;
    expect(body.match(/```/g)).toHaveLength(2);
    expect(body.length).toBeLessThanOrEqual(3000);
    expect(blocks.at(-1)).toMatchObject({ type: 'actions' });
    const decided = slackCardMessage(approvalCard(action({ status: 'rejected' }), SLACK_LIMITS, NOW));
    expect(decided.blocks.some((b) => b.type === 'actions')).toBe(false);
  });
});
