/**
 * Turn overhead: what a conversation's turn spends outside the model and the tools. The model is
 * the local fake speaking OpenAI's protocol through the real openai client, answering at once;
 * the budget is on (a day limit, so each step is estimated, reserved in the audit log and
 * granted). It measures, through the real HTTP API:
 *   - plain steps: a turn whose one model step answers at once (BENCH_TURNS turns, default 30);
 *   - the same with 16 KB of hard-to-tokenise text in each message (random base64, new each turn);
 *   - a ten-tool-call turn (the model asks for ten filesystem `info` calls, then answers) against
 *     the same ten actions submitted over REST one after another (BENCH_TOOL_TURNS, default 5);
 * and, in the same run, the raw baseline: the fake model's own round trip through the openai
 * client. Overhead per model step = (turn time − model round trips − tool actions as REST runs
 * them) / model steps. Results: a table on stdout and JSON in bench-results/.
 *   npx tsx test/bench/turn-overhead.ts
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import OpenAI from 'openai';
import pino from 'pino';
import { Client, Connection } from '@temporalio/client';
import { Runtime } from '@temporalio/worker';
import { createApp } from '../../api/app.js';
import { modelBudgetSettings } from '../../activities/budget.js';
import { ConfigSchema } from '../../domain/config.js';
import { createDataConverter, loadPayloadCodec } from '../../domain/data-converter.js';
import { Keyring } from '../../domain/keyring.js';
import { loadProviderConfigs } from '../../domain/model-providers.js';
import { loadPolicy } from '../../domain/policy.js';
import { ProviderRegistry } from '../../llm/registry.js';
import { estimateCall } from '../../llm/token-estimate.js';
import { startDevServer } from '../../scripts/dev-server.js';
import { SKILLS } from '../../skills/index.js';
import { AuditStore } from '../../stores/audit-store.js';
import { KeyStore } from '../../stores/key-store.js';
import { ModelCallLedger } from '../../stores/model-call-ledger.js';
import { Vault } from '../../stores/vault.js';
import { bundleWorkflows } from '../../workers/bundle.js';
import { createWorkers } from '../../workers/create-workers.js';
import { openaiCompletion, startFakeLlm } from '../support/fake-llm.js';
import { positiveInt } from './env.js';
import { freePort, serveApi } from './http-api.js';

const TURNS = positiveInt('BENCH_TURNS', 30);
const TOOL_TURNS = positiveInt('BENCH_TOOL_TURNS', 5);
const TOOL_CALLS = 10;
const WARMUP = 3;
const HARD_TEXT_BYTES = 16 * 1024;
const ROUTE = 'POST /v1/chat/completions';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
function percentile(samples: number[], p: number): number {
  const s = [...samples].sort((a, b) => a - b);
  const rank = (p / 100) * (s.length - 1);
  return s[Math.floor(rank)]! + (s[Math.ceil(rank)]! - s[Math.floor(rank)]!) * (rank - Math.floor(rank));
}
const stats = (samples: number[]) => ({
  n: samples.length,
  p50: +percentile(samples, 50).toFixed(1),
  p95: +percentile(samples, 95).toFixed(1),
});

async function main(): Promise<void> {
  const tmp = mkdtempSync(join(os.tmpdir(), 'warden-bench-turn-'));
  const docker = new Docker();
  const noop = () => undefined;
  Runtime.install({ logger: { log: noop, trace: noop, debug: noop, info: noop, warn: noop, error: (m) => console.error(m) } });
  const fake = await startFakeLlm();
  const server = await startDevServer({
    dbFile: join(tmp, 'temporal.db'),
    port: await freePort(),
    uiPort: 0,
    ui: false,
    logFile: join(tmp, 'temporal.log'),
  });
  const config = ConfigSchema.parse({
    temporalAddress: server.address,
    dataDir: tmp,
    dockerHostId: 'bench',
    logLevel: 'silent',
    rateLimits: 'off',
    requireSandbox: false,
    llmBaseUrl: `${fake.origin}/v1`,
    llmModel: 'fake-model',
    // A day budget: every step is estimated, reserved in the audit log and granted, as in production.
    budgetDayTokens: 1_000_000_000,
    ...(process.env.WARDEN_SANDBOX_IMAGE ? { sandboxImage: process.env.WARDEN_SANDBOX_IMAGE } : {}),
  });
  const keyring = Keyring.load({ dataDir: tmp });
  const keys = KeyStore.open(':memory:');
  const audit = AuditStore.open(join(tmp, 'audit.db'), { keyring, isKnownKeyId: (id) => keys.has(id) });
  const vault = Vault.open(join(tmp, 'vault.db'), keyring);
  const spentModelCalls = ModelCallLedger.open(join(tmp, 'model-calls.db'));
  const payloadCodec = loadPayloadCodec(config, { warn: () => undefined });
  const providers = loadProviderConfigs(config);
  const workers = await createWorkers({
    temporal: { address: server.address },
    namespace: 'default',
    dockerHostId: 'bench',
    roles: ['control', 'sandbox', 'model'],
    payloadCodec,
    policy: loadPolicy(SKILLS),
    audit,
    vault,
    docker,
    conversations: {
      isRevoked: async (id) => !(await keys.has(id)) || (await keys.isRevoked(id)),
      approvalExpirySeconds: config.approvalExpirySeconds,
      budget: modelBudgetSettings(config, providers),
    },
    providers: new ProviderRegistry({ configs: providers, vault, logger: pino({ level: 'silent' }) }),
    spentModelCalls,
    workflowBundle: await bundleWorkflows(),
    shutdownGraceTime: '2 seconds',
  });
  const running = workers.run();
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection, dataConverter: createDataConverter(payloadCodec) });
  const { key } = await keys.create('bench', 'admin', null);
  const app = createApp({
    client,
    docker,
    config,
    logger: pino({ level: 'silent' }),
    keys,
    audit,
    vault,
    policy: loadPolicy(SKILLS),
    payloadCodec,
  });
  const http = await serveApi(app, key);
  const { api } = http;
  const timed = async <T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> => {
    const started = performance.now();
    const value = await fn();
    return { ms: performance.now() - started, value };
  };
  const agentId = `bench-turn-${randomBytes(3).toString('hex')}`;
  try {
    const created = await api('POST', '/api/agents', { skill_id: 'filesystem', runtime: 'runc', agent_id: agentId });
    if (created.status !== 201) throw new Error(`POST /api/agents: ${created.status} ${JSON.stringify(created.body)}`);
    while ((await api('GET', `/api/agents/${agentId}`)).body?.status !== 'running') await sleep(20);

    // Raw baseline: the fake model's round trip through the openai client, as the model worker makes it.
    const openai = new OpenAI({ baseURL: `${fake.origin}/v1`, apiKey: 'bench' });
    const modelRoundTrip: number[] = [];
    for (let i = -WARMUP; i < TURNS; i++) {
      fake.script(ROUTE, { json: openaiCompletion({ content: 'ok' }) });
      const { ms } = await timed(() =>
        openai.chat.completions.create({ model: 'fake-model', messages: [{ role: 'user', content: 'hi' }] }),
      );
      if (i >= 0) modelRoundTrip.push(ms);
    }
    const modelMs = percentile(modelRoundTrip, 50);

    async function say(conversation: string, message: string) {
      const { ms, value } = await timed(() => api('POST', `/api/conversations/${conversation}/messages`, { message, wait_seconds: 60 }));
      if (value.body?.status !== 'answered') throw new Error(`turn ended ${value.status} ${JSON.stringify(value.body)}`);
      return ms;
    }
    const newConversation = async () => (await api('POST', '/api/conversations', { agent_id: agentId })).body.id as string;

    // Plain steps, and steps with fresh hard-to-tokenise text, each in a conversation of its own.
    const plain: number[] = [];
    const hard: number[] = [];
    const estimateHard: number[] = [];
    for (const [samples, message] of [
      [plain, () => 'what is in the workspace?'],
      [hard, () => randomBytes((HARD_TEXT_BYTES * 3) / 4).toString('base64')],
    ] as const) {
      let conversation = await newConversation();
      for (let i = -WARMUP; i < TURNS; i++) {
        fake.script(ROUTE, { json: openaiCompletion({ content: 'Nothing yet.' }) });
        // One step with 16 KB each: a conversation of its own, so the transcript does not grow turn by turn.
        if (samples === hard) conversation = await newConversation();
        const ms = await say(conversation, message());
        if (i < 0) continue;
        samples.push(ms - modelMs);
        if (samples === hard) {
          // What the estimate of that text costs alone, in this process, before it is remembered.
          const fresh = randomBytes((HARD_TEXT_BYTES * 3) / 4).toString('base64');
          estimateHard.push((await timed(async () => estimateCall([{ role: 'user', content: fresh }], []))).ms);
        }
      }
    }

    // Ten tool calls in one turn, against the same ten actions over REST.
    const toolTurn: number[] = [];
    const restActions: number[] = [];
    const perStepWithTools: number[] = [];
    const calls = [...Array(TOOL_CALLS).keys()].map((i) => ({ id: `call_${i}`, name: 'filesystem_info', arguments: '{}' }));
    for (let i = -1; i < TOOL_TURNS; i++) {
      const conversation = await newConversation();
      fake.script(ROUTE, { json: openaiCompletion({ tool_calls: calls }) }, { json: openaiCompletion({ content: 'Done.' }) });
      const turnMs = await say(conversation, 'look at the workspace ten times');
      let restMs = 0;
      for (let c = 0; c < TOOL_CALLS; c++) {
        const { ms, value } = await timed(() =>
          api('POST', '/api/actions', {
            action_type: 'skill_execution',
            skill_id: 'filesystem',
            operation: 'info',
            agent_id: agentId,
            parameters: {},
            wait_seconds: 10,
          }),
        );
        if (value.body?.status !== 'completed') throw new Error(`action ended ${value.status} ${JSON.stringify(value.body)}`);
        restMs += ms;
      }
      if (i < 0) continue;
      toolTurn.push(turnMs);
      restActions.push(restMs);
      perStepWithTools.push((turnMs - restMs - 2 * modelMs) / 2);
    }

    const results = {
      at: new Date().toISOString(),
      machine: { cpus: os.cpus().length, load_average: os.loadavg() },
      goal_ms_per_step: 50,
      model_round_trip_ms: stats(modelRoundTrip),
      overhead_per_step_ms: stats(plain),
      overhead_per_step_hard_16kb_ms: stats(hard),
      estimate_hard_16kb_ms: stats(estimateHard),
      ten_tool_turn_ms: stats(toolTurn),
      ten_rest_actions_ms: stats(restActions),
      overhead_per_step_ten_tool_turn_ms: stats(perStepWithTools),
    };
    const row = (what: string, s: { n: number; p50: number; p95: number }) =>
      console.log(`${what.padEnd(58)} ${String(s.p50).padStart(9)} ${String(s.p95).padStart(9)} ${String(s.n).padStart(5)}`);
    console.log(
      `\nturn overhead (load average ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}, ${os.cpus().length} cpus)`,
    );
    console.log(`${'measure (ms)'.padEnd(58)} ${'p50'.padStart(9)} ${'p95'.padStart(9)} ${'n'.padStart(5)}`);
    row('raw: the fake model through the openai client', results.model_round_trip_ms);
    row('overhead per model step (turn minus model)', results.overhead_per_step_ms);
    row('overhead per model step, 16 KB hard-to-tokenise message', results.overhead_per_step_hard_16kb_ms);
    row('  of which: estimating 16 KB of fresh hard text', results.estimate_hard_16kb_ms);
    row('ten-tool-call turn (2 model steps)', results.ten_tool_turn_ms);
    row('the same ten actions over REST, one after another', results.ten_rest_actions_ms);
    row('overhead per model step of the ten-tool-call turn', results.overhead_per_step_ten_tool_turn_ms);
    mkdirSync('bench-results', { recursive: true });
    const file = join('bench-results', `turn-overhead-${results.at.replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
    console.log(`\n${file}`);
  } finally {
    await api('POST', `/api/agents/${agentId}/stop`, { force: true }).catch(() => undefined);
    for (let i = 0; i < 300 && (await api('GET', `/api/agents/${agentId}`)).body?.status !== 'stopped'; i++) await sleep(100);
    http.close();
    await app.channels.stop();
    workers.shutdown();
    await running;
    await connection.close();
    await server.stop();
    await fake.close();
    await Promise.all([audit.close(), vault.close(), spentModelCalls.close(), keys.close()]);
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
