/**
 * Starts the embedded default model (scripts/embedded-model.py, installed by scripts/setup-llm.sh)
 * for `make up` and the tests alike, and waits until it answers. The server exits with the process
 * that started it.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { openSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ensurePrivateFile } from '../domain/private-files.js';
import { PROJECT_ROOT } from './dev-server.js';

const run = promisify(execFile);

export interface EmbeddedModel {
  /** The OpenAI-compatible base URL, `http://127.0.0.1:<port>/v1`. */
  baseUrl: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** The venv's Python that runs the model, installing the pinned wheels when missing. */
export async function embeddedModelPython(): Promise<string> {
  const { stdout } = await run('bash', [join(PROJECT_ROOT, 'scripts/setup-llm.sh')], { maxBuffer: 16 * 1024 * 1024 });
  return stdout.trim();
}

export async function startEmbeddedModel(opts: { port: number; logFile: string; timeoutMs?: number }): Promise<EmbeddedModel> {
  const python = await embeddedModelPython();
  // The server logs the body of a request it refuses: for Warden's user only.
  ensurePrivateFile(opts.logFile);
  const out = openSync(opts.logFile, 'a');
  const child = spawn(python, [join(PROJECT_ROOT, 'scripts/embedded-model.py'), '--port', String(opts.port)], {
    stdio: ['ignore', out, out],
  });
  const origin = `http://127.0.0.1:${opts.port}`;
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`the embedded model exited with code ${code}; see ${opts.logFile}`))),
  );
  exited.catch(() => undefined);
  await Promise.race([waitHealthy(origin, opts.timeoutMs ?? 60_000), exited]);
  return {
    baseUrl: `${origin}/v1`,
    process: child,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await gone;
    },
  };
}

async function waitHealthy(origin: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${origin}/health`);
      if (res.ok) return;
      last = `${res.status}`;
    } catch (err) {
      last = String(err);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the embedded model at ${origin} did not answer within ${timeoutMs} ms: ${last}`);
}
