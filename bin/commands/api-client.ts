/**
 * The CLI's view of the REST API: where it is (WARDEN_API_URL), which key to send (WARDEN_API_KEY,
 * or `make up`'s key file), and errors a person can act on. Exit codes: 1 the API refused or
 * failed the request, 3 the API cannot be reached, 4 the key is missing, unknown or too weak.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const EXIT = { failed: 1, usage: 2, unreachable: 3, auth: 4 } as const;

/** An error the CLI prints as it is (no stack) before exiting with its code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

const PROJECT_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** WARDEN_API_KEY, else the admin key `make up` keeps in `<data dir>/admin-key`. */
export function findApiKey(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.WARDEN_API_KEY) return env.WARDEN_API_KEY.trim();
  const file = resolve(PROJECT_ROOT, env.WARDEN_DATA_DIR || '.warden/data', 'admin-key');
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined;
}

export interface ApiClient {
  readonly url: string;
  /** JSON in, JSON out; any answer but 2xx becomes a CliError that says what to do. */
  call<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T>;
  /** The raw text of a 2xx answer (exports). */
  text(path: string): Promise<string>;
  /** A 2xx answer to read as it comes (an event stream), open until `signal` aborts. */
  open(path: string, headers: Record<string, string>, signal: AbortSignal): Promise<Response>;
}

export function apiClient(env: NodeJS.ProcessEnv = process.env): ApiClient {
  const url = (env.WARDEN_API_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
  const key = findApiKey(env);

  async function send(
    method: string,
    path: string,
    body?: unknown,
    { headers = {}, signal = AbortSignal.timeout(120_000) }: { headers?: Record<string, string>; signal?: AbortSignal } = {},
  ): Promise<Response> {
    if (!key) {
      throw new CliError(
        'no API key: set WARDEN_API_KEY (or run `make up`, which keeps an admin key in .warden/data/admin-key)',
        EXIT.auth,
      );
    }
    let res: Response;
    try {
      res = await fetch(`${url}${path}`, {
        method,
        headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
    } catch (err) {
      if (signal.aborted && signal.reason?.name !== 'TimeoutError') throw err;
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const why = cause?.code ?? cause?.message ?? (err as Error).message;
      throw new CliError(
        `cannot reach the Warden API at ${url} (${why}); is it running? (WARDEN_API_URL sets where it is)`,
        EXIT.unreachable,
      );
    }
    if (res.ok) return res;
    const text = await res.text();
    let message = text.trim() || res.statusText;
    try {
      message = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? message;
    } catch {
      // Not JSON (a proxy's page): the text is the message.
    }
    if (res.status === 401) throw new CliError(`the API refused the key: ${message} (set WARDEN_API_KEY to a valid key)`, EXIT.auth);
    if (res.status === 403) throw new CliError(`not allowed: ${message}`, EXIT.auth);
    if (res.status === 404) throw new CliError(`not found: ${message}`, EXIT.failed);
    throw new CliError(`${method} ${path} failed (${res.status}): ${message}`, EXIT.failed);
  }

  return {
    url,
    async call<T>(method: string, path: string, body?: unknown) {
      const res = await send(method, path, body);
      const text = await res.text();
      return (text ? JSON.parse(text) : {}) as T;
    },
    async text(path: string) {
      return (await send('GET', path)).text();
    },
    open: (path, headers, signal) => send('GET', path, undefined, { headers, signal }),
  };
}
