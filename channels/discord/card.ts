/**
 * An approval card as a Discord message: an embed (what is asked, the exact parameters in a code
 * block, the facts) and, while the action awaits a decision, an Approve and a Reject button.
 * Nothing in it can ping anyone or break out of its block.
 */
import { escapeMarkdown, type APIActionRowComponent, type APIButtonComponentWithCustomId, type APIEmbed } from 'discord.js';
import type { ApprovalCard, CardLimits } from '../card.js';

/**
 * What fits Discord's limits (description 4096, field 1024) even when every character is a
 * backtick, which escaping doubles.
 */
export const DISCORD_LIMITS: CardLimits = { parameters: 1800, output: 400 };

const WAITING = 0xf1c40f;
const SETTLED = 0x95a5a6;

/** Text that stays inside its code block: no run of three backticks can close it. */
export const inCodeBlock = (text: string): string => `\`\`\`\n${text.replaceAll('`', '`\u200b')}\n\`\`\``;

export interface DiscordCardMessage {
  content: string;
  embeds: APIEmbed[];
  components: APIActionRowComponent<APIButtonComponentWithCustomId>[];
  allowedMentions: { parse: [] };
}

export function discordCardMessage(card: ApprovalCard): DiscordCardMessage {
  const description = [
    `**${escapeMarkdown(card.state)}**`,
    'Parameters:',
    inCodeBlock(card.parameters),
    ...(card.parameters_note ? [`*${escapeMarkdown(card.parameters_note)}*`] : []),
  ].join('\n');
  const embed: APIEmbed = {
    title: escapeMarkdown(card.title).slice(0, 256),
    description,
    color: card.buttons ? WAITING : SETTLED,
    fields: [
      ...card.facts.map(([name, value]) => ({ name, value: escapeMarkdown(value).slice(0, 1024), inline: true })),
      ...(card.output ? [{ name: 'Output', value: inCodeBlock(card.output), inline: false }] : []),
    ],
  };
  const components: DiscordCardMessage['components'] = card.buttons
    ? [
        {
          type: 1,
          components: [
            { type: 2, style: 3, label: 'Approve', custom_id: card.buttons.approve },
            { type: 2, style: 4, label: 'Reject', custom_id: card.buttons.reject },
          ],
        },
      ]
    : [];
  return { content: '', embeds: [embed], components, allowedMentions: { parse: [] } };
}
