/** warden channels list | pairings | pair | confirm | unpair: the chat channels and who acts through them. */
import type { Command } from './command.js';
import { fields, print, printJson, table, type Row } from './output.js';

const pairingPath = (user: string) => `/api/channels/pairings/${encodeURIComponent(user)}`;

export const channelCommands: Record<string, Command> = {
  'channels list': {
    usage: 'warden channels list',
    summary: 'the chat channels: connected, rooms, last event, error',
    async run({ api, json }) {
      const res = await api.call<{ channels: Row[] }>('GET', '/api/channels');
      if (json) return printJson(res);
      print(table(res.channels, ['name', 'connected', 'rooms', 'last_event_at', 'error']));
    },
  },
  'channels pairings': {
    usage: 'warden channels pairings',
    summary: 'admin: chat users paired to API keys (revoked ones too)',
    async run({ api, json }) {
      const res = await api.call<{ pairings: Row[] }>('GET', '/api/channels/pairings');
      if (json) return printJson(res);
      print(table(res.pairings, ['platform_user', 'key_id', 'paired_by', 'paired_at', 'confirmed_at', 'revoked_at']));
    },
  },
  'channels pair': {
    usage: 'warden channels pair <channel>:<user id> <key id>',
    summary: "admin: link a chat user to an API key; it acts once the key's holder runs `warden channels confirm`",
    args: 2,
    async run({ api, json, args }) {
      const pairing = await api.call<Row>('POST', '/api/channels/pairings', { platform_user: args[0], key_id: args[1] });
      if (json) return printJson(pairing);
      print(`${args[0]} paired to ${args[1]}; the key's holder confirms it with \`warden channels confirm ${args[0]}\` (using that key)`);
    },
  },
  'channels confirm': {
    usage: 'warden channels confirm <channel>:<user id>',
    summary: 'confirm, with the very key it links to, that the chat user is you',
    args: 1,
    async run({ api, json, args }) {
      const pairing = await api.call<Row>('POST', `${pairingPath(args[0]!)}/confirm`);
      if (json) return printJson(pairing);
      print(`pairing confirmed\n${fields(pairing)}`);
    },
  },
  'channels unpair': {
    usage: 'warden channels unpair <channel>:<user id>',
    summary: "admin: revoke a pairing; the user's clicks are dropped from now on",
    args: 1,
    async run({ api, json, args }) {
      const pairing = await api.call<Row>('DELETE', pairingPath(args[0]!));
      if (json) return printJson(pairing);
      print(`pairing of ${args[0]} revoked`);
    },
  },
};
