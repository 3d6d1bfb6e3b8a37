/**
 * An approval card as Slack blocks: the title and state, the facts as fields, the parameters in a
 * code block (escaped: Slack's &, < and >, and no run of three backticks), and an actions block of
 * Approve and Reject while the action awaits a decision. The button's value is its data.
 */
import type { types } from '@slack/bolt';
import type { ApprovalCard, CardLimits } from '../card.js';

type KnownBlock = types.KnownBlock;

/** Within a section's 3000 characters even when escaping makes every character five. */
export const SLACK_LIMITS: CardLimits = { parameters: 500, output: 300 };

export const escapeSlack = (text: string): string => text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
const codeBlock = (text: string) => `\`\`\`${escapeSlack(text).replaceAll('`', '`\u200b')}\`\`\``;

export function slackCardMessage(card: ApprovalCard): { text: string; blocks: KnownBlock[] } {
  const blocks: KnownBlock[] = [
    { type: 'section', text: { type: 'mrkdwn', text: `*${escapeSlack(card.title)}*\n${escapeSlack(card.state)}` } },
    {
      type: 'section',
      fields: card.facts.map(([label, value]) => ({ type: 'mrkdwn', text: `*${escapeSlack(label)}*\n${escapeSlack(value)}` })),
    },
    { type: 'section', text: { type: 'mrkdwn', text: `Parameters:\n${codeBlock(card.parameters)}` } },
    ...(card.parameters_note
      ? [{ type: 'context', elements: [{ type: 'mrkdwn', text: escapeSlack(card.parameters_note) }] } as KnownBlock]
      : []),
    ...(card.output ? [{ type: 'section', text: { type: 'mrkdwn', text: `Output:\n${codeBlock(card.output)}` } } as KnownBlock] : []),
    ...(card.buttons
      ? [
          {
            type: 'actions',
            elements: [
              {
                type: 'button',
                action_id: 'warden-approve',
                style: 'primary',
                text: { type: 'plain_text', text: 'Approve' },
                value: card.buttons.approve,
              },
              {
                type: 'button',
                action_id: 'warden-reject',
                style: 'danger',
                text: { type: 'plain_text', text: 'Reject' },
                value: card.buttons.reject,
              },
            ],
          } as KnownBlock,
        ]
      : []),
  ];
  return { text: `${card.title}: ${card.state}`, blocks };
}
