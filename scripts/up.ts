/**
 * `make up`: the whole stack in the foreground. Starts the embedded Temporal dev server (unless
 * TEMPORAL_ADDRESS or a Temporal profile names a server to use), the embedded default model (unless
 * a model provider is configured, or WARDEN_EMBEDDED_MODEL=off), the worker and the API, waits until the API is ready,
 * prints where everything is, runs the demo (WARDEN_DEMO=0 skips it), and on Ctrl-C stops the
 * API, then the worker (in-flight activities finish), then the model and Temporal.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { loadConfig } from '../domain/config.js';
import { Keyring } from '../domain/keyring.js';
import { loadTemporalProfile } from '../domain/temporal-connection.js';
import { ensurePrivateFile } from '../domain/private-files.js';
import { loadProviderConfigs } from '../domain/model-providers.js';
import { devServerEnv, PROJECT_ROOT, startDevServer, type DevServer } from './dev-server.js';
import { runDemo } from './demo.js';
import { startEmbeddedModel, type EmbeddedModel } from './embedded-model.js';

const config = loadConfig();
const say = (line: string) => console.log(`[warden] ${line}`);
const children: ChildProcess[] = [];
let temporal: DevServer | undefined;
let model: EmbeddedModel | undefined;
let stopping = false;

async function main() {
  const profile = loadTemporalProfile({ configFile: config.temporalConfigFile, profile: config.temporalProfile }, process.env);
  let temporalAddress = profile.profile.address ? config.temporalAddress : undefined;
  let webUi = 'the Web UI of your Temporal server';
  if (!temporalAddress) {
    const dataDir = resolve(PROJECT_ROOT, config.dataDir);
    say(`starting the Temporal dev server (state in ${dataDir}/temporal.db)`);
    const logFile = join(PROJECT_ROOT, '.warden/log/temporal.log');
    // The server's log names workflows and their errors: for Warden's user only (0600 in a 0700 dir).
    ensurePrivateFile(logFile);
    temporal = await startDevServer({
      dbFile: join(dataDir, 'temporal.db'),
      port: config.devServerPort,
      uiPort: config.devServerUiPort,
      logFile,
      uiCodecEndpoint: `${apiUrl()}/codec`,
    });
    temporalAddress = temporal.address;
    webUi = `http://127.0.0.1:${config.devServerUiPort}`;
  }
  // Made here, once, so the worker and the API never race to create two different key files.
  Keyring.load({
    masterKey: config.masterKey,
    previousMasterKeys: config.masterKeyPrevious,
    dataDir: resolve(PROJECT_ROOT, config.dataDir),
    onKeyFileCreated: (file) => say(`master key     created in ${file} (mode 0600): back it up`),
  });
  const adminKey = config.adminApiKey ?? localAdminKey();
  const env: NodeJS.ProcessEnv = {
    ...(temporal
      ? devServerEnv(process.env, temporalAddress, join(resolve(PROJECT_ROOT, config.dataDir), 'temporal-dev-server.toml'))
      : { ...process.env, TEMPORAL_ADDRESS: temporalAddress }),
    WARDEN_ADMIN_API_KEY: adminKey,
  };
  // Any configured provider replaces the embedded model.
  const providers = loadProviderConfigs({ ...config, embeddedModelUrl: undefined });
  if (providers.length === 0 && config.embeddedModel === 'auto') {
    say(`starting the embedded model (SmolLM2-135M on llama.cpp, port ${config.embeddedModelPort})`);
    model = await startEmbeddedModel({ port: config.embeddedModelPort, logFile: join(PROJECT_ROOT, '.warden/log/embedded-model.log') });
    env.WARDEN_EMBEDDED_MODEL_URL = model.baseUrl;
  }
  for (const [name, entry] of [
    ['worker', 'workers/main.ts'],
    ['api', 'api/main.ts'],
  ] as const) {
    const child = spawn(process.execPath, ['--import', 'tsx', entry], { cwd: PROJECT_ROOT, env, stdio: ['ignore', 'inherit', 'inherit'] });
    child.once('exit', (code, signal) => {
      if (!stopping) {
        say(`${name} exited (${signal ?? code}); stopping everything`);
        void shutdown(1);
      }
    });
    children.push(child);
  }

  const api = apiUrl();
  await waitReady(api);
  say(`API            ${api}`);
  say(`API docs       ${api}/docs  (OpenAPI: ${api}/openapi.json)`);
  say(`Console        ${api}/console  (sign in with an API key; see docs/console.md)`);
  say(`Temporal       ${temporalAddress}`);
  say(`Temporal UI    ${webUi}`);
  say(
    model
      ? `Model          ${model.baseUrl} (the embedded SmolLM2-135M; configure a provider to replace it: docs/models.md)`
      : `Model          ${providers.map((p) => `${p.name} (${p.default_model})`).join(', ') || 'none (WARDEN_EMBEDDED_MODEL=off)'}`,
  );
  if (temporal) say(`Web UI decoding through ${api}/codec: sign in once at ${api}/codec/login (see docs/security.md, Encrypted payloads)`);
  if (!config.adminApiKey)
    say(`admin API key  in ${keyFile()} (mode 0600): curl -H "Authorization: Bearer $(cat ${keyFile()})" ${api}/api/agents`);
  if (process.env.WARDEN_DEMO !== '0') {
    await runDemo(api, adminKey, say, { conversation: model !== undefined || providers.length > 0 });
    say('demo finished');
  }
  say('running; Ctrl-C stops everything');
}

// The address a browser on this machine reaches the API at.
const apiUrl = () => `http://${config.apiHost === '0.0.0.0' ? '127.0.0.1' : config.apiHost}:${config.apiPort}`;

const keyFile = () => resolve(PROJECT_ROOT, config.dataDir, 'admin-key');

/** `make up`'s admin key: made once and kept in a 0600 file under the data dir (git-ignored). */
function localAdminKey(): string {
  const file = keyFile();
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(dirname(file), { recursive: true });
  const key = `wk_${randomBytes(32).toString('base64url')}`;
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
  return key;
}

async function waitReady(api: string, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline && !stopping) {
    try {
      const res = await fetch(`${api}/readyz`);
      if (res.ok) return;
      last = JSON.stringify((await res.json()).components);
    } catch (err) {
      last = String(err);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`the API at ${api} did not become ready: ${last}`);
}

async function shutdown(code: number) {
  if (stopping) return;
  stopping = true;
  say('stopping: API, then worker, then the model and Temporal');
  for (const child of [...children].reverse()) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await Promise.race([gone, new Promise((r) => setTimeout(r, 45_000))]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  await model?.stop();
  await temporal?.stop();
  say('stopped');
  process.exit(code);
}

process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));
main().catch((err) => {
  console.error(`[warden] ${err instanceof Error ? err.message : err}`);
  void shutdown(1);
});
