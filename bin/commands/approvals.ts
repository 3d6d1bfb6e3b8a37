/** warden approvals list | show | approve | reject: the actions awaiting a decision, decided from the terminal. */
import type { ApiClient } from './api-client.js';
import type { Command, CommandContext } from './command.js';
import { fields, print, printJson, table, type Row } from './output.js';

const actionPath = (id: string) => `/api/actions/${encodeURIComponent(id)}`;

interface Action extends Row {
  id: string;
  params_hash: string;
  parameters: Record<string, unknown>;
}

const decisionOptions = {
  comment: { type: 'string' },
  'params-hash': { type: 'string' },
} as const;

/**
 * Decides an action, bound to the parameters hash the person reviewed: the one given with
 * --params-hash (from `approvals show`), else the one read now, whose parameters are printed.
 */
async function decide(api: ApiClient, { json, args, values }: CommandContext, approved: boolean) {
  const action = await api.call<Action>('GET', actionPath(args[0]!));
  const paramsHash = typeof values['params-hash'] === 'string' ? values['params-hash'] : action.params_hash;
  const comment = typeof values.comment === 'string' ? values.comment : undefined;
  const res = await api.call<Row>('POST', `${actionPath(action.id)}/approve`, { approved, params_hash: paramsHash, comment });
  if (json) return printJson(res);
  print(
    `${approved ? 'approved' : 'rejected'} ${action.id} (now ${res.status}); parameters:\n${JSON.stringify(action.parameters, null, 2)}`,
  );
}

export const approvalCommands: Record<string, Command> = {
  'approvals list': {
    usage: 'warden approvals list [--limit N]',
    summary: 'actions awaiting approval, newest first',
    options: { limit: { type: 'string' } },
    async run({ api, json, values }) {
      const res = await api.call<{ actions: Row[] }>('GET', `/api/actions/pending${values.limit ? `?limit=${Number(values.limit)}` : ''}`);
      if (json) return printJson(res);
      print(table(res.actions, ['id', 'agent_id', 'skill_id', 'security_level', 'created_at']));
    },
  },
  'approvals show': {
    usage: 'warden approvals show <action id>',
    summary: 'an action in full: its exact parameters, level, rule, requester, approvals and params hash',
    args: 1,
    async run({ api, json, args }) {
      const action = await api.call<Action>('GET', actionPath(args[0]!));
      if (json) return printJson(action);
      const { parameters, ...rest } = action;
      print(
        fields(rest, [
          'id',
          'status',
          'skill_id',
          'operation',
          'agent_id',
          'security_level',
          'rule',
          'requester',
          'approvals',
          'approvals_required',
          'expires_at',
          'params_hash',
          'error',
        ]),
      );
      print(`parameters:\n${JSON.stringify(parameters, null, 2)}`);
    },
  },
  'approvals approve': {
    usage: 'warden approvals approve <action id> [--comment TEXT] [--params-hash HASH]',
    summary: 'approver: approve an action (bound to HASH, from `approvals show`, when given)',
    args: 1,
    options: decisionOptions,
    run: (ctx) => decide(ctx.api, ctx, true),
  },
  'approvals reject': {
    usage: 'warden approvals reject <action id> [--comment TEXT]',
    summary: 'approver: reject an action',
    args: 1,
    options: decisionOptions,
    run: (ctx) => decide(ctx.api, ctx, false),
  },
};
