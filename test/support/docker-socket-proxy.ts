/**
 * A stand-in for docker-compose.yml's `docker-proxy` (tecnativa/docker-socket-proxy), whose image
 * cannot be pulled here. It decides as the image's HAProxy does, following haproxy.cfg and the
 * Dockerfile's ENV defaults of that release
 * (https://github.com/Tecnativa/docker-socket-proxy/blob/v0.3.0/haproxy.cfg and .../v0.3.0/Dockerfile):
 * - `http-request deny unless METH_GET || { env(POST) -m bool }`: only GET and HEAD unless POST;
 * - then one `http-request allow if { path,url_dec -m reg -i ^(/v[\d\.]+)?/<section> } { env(<VAR>) -m bool }`
 *   per section (ALLOW_RESTARTS, ALLOW_START and ALLOW_STOP match one container's action; releases
 *   after 0.3.0 also admit one segment such as podman's /libpod before the section);
 * - then `http-request deny`, answered with HAProxy's stock 403 page.
 * Allowed requests go to the engine's socket unchanged. Given the environment of the service, it
 * lets through exactly what the image would, so a test through it fails when compose's `docker-proxy`
 * stops allowing what the API needs.
 */
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';

/** The image this stand-in follows; a compose file naming another one needs the rules re-checked. */
export const DOCKER_SOCKET_PROXY_IMAGE = 'tecnativa/docker-socket-proxy:0.3.0';

/** The Dockerfile's ENV: what each variable is when the service's environment does not set it. */
const IMAGE_DEFAULTS: Record<string, string> = {
  ALLOW_RESTARTS: '0',
  ALLOW_START: '0',
  ALLOW_STOP: '0',
  AUTH: '0',
  BUILD: '0',
  COMMIT: '0',
  CONFIGS: '0',
  CONTAINERS: '0',
  DISTRIBUTION: '0',
  EVENTS: '1',
  EXEC: '0',
  GRPC: '0',
  IMAGES: '0',
  INFO: '0',
  NETWORKS: '0',
  NODES: '0',
  PING: '1',
  PLUGINS: '0',
  POST: '0',
  SECRETS: '0',
  SERVICES: '0',
  SESSION: '0',
  SWARM: '0',
  SYSTEM: '0',
  TASKS: '0',
  VERSION: '1',
  VOLUMES: '0',
};

const SECTIONS = [
  'auth',
  'build',
  'commit',
  'configs',
  'containers',
  'distribution',
  'events',
  'exec',
  'grpc',
  'images',
  'info',
  'networks',
  'nodes',
  '_ping',
  'plugins',
  'secrets',
  'services',
  'session',
  'swarm',
  'system',
  'tasks',
  'version',
  'volumes',
];
const CONTAINER_ACTION = '/containers/[a-zA-Z0-9_.-]+/';
/** haproxy.cfg's allow rules, in its order: the variable that turns each on and the path it matches (case-insensitive, unanchored at the end). */
const ALLOW_RULES: Array<{ variable: string; path: RegExp }> = [
  ['ALLOW_RESTARTS', `${CONTAINER_ACTION}((stop)|(restart)|(kill))`],
  ['ALLOW_START', `${CONTAINER_ACTION}start`],
  ['ALLOW_STOP', `${CONTAINER_ACTION}stop`],
  ...SECTIONS.map((section) => [section === '_ping' ? 'PING' : section.toUpperCase(), `/${section}`]),
].map(([variable, path]) => ({ variable: variable!, path: new RegExp(`^(/v[\\d\\.]+)?${path}`, 'i') }));

/** HAProxy's errors/403.http, which the image's haproxy.cfg serves for every denial. */
const FORBIDDEN_BODY = '<html><body><h1>403 Forbidden</h1>\nRequest forbidden by administrative rules.\n</body></html>\n';

/**
 * `env(VAR) -m bool`: HAProxy casts the string to an integer from its leading digits; a value that
 * does not start with one (unset, empty, "true") fails the cast, and the rule does not match.
 */
function envBool(value: string | undefined): boolean {
  const digits = /^\d+/.exec(value ?? '');
  return digits !== null && Number(digits[0]) !== 0;
}

/** The service's environment over the image's defaults; a variable Compose leaves without a value is not set. */
export function proxyEnvironment(service: Record<string, string | null | undefined>): Record<string, string> {
  const set = Object.entries(service).filter((e): e is [string, string] => typeof e[1] === 'string');
  return { ...IMAGE_DEFAULTS, ...Object.fromEntries(set) };
}

/** Whether the image, with this environment, passes the request to the engine (otherwise it answers 403). */
export function allows(env: Record<string, string>, method: string, url: string): boolean {
  if (method !== 'GET' && method !== 'HEAD' && !envBool(env.POST)) return false;
  let path: string;
  try {
    path = decodeURIComponent(url.split('?')[0]!);
  } catch {
    return false; // url_dec fails, so no allow rule matches
  }
  return ALLOW_RULES.some((rule) => envBool(env[rule.variable]) && rule.path.test(path));
}

export interface DockerSocketProxy {
  port: number;
  close(): Promise<void>;
}

/** Listens on 127.0.0.1 as the image does on :2375, in front of the engine's socket. */
export async function startDockerSocketProxy(
  serviceEnvironment: Record<string, string | null | undefined>,
  socketPath = '/var/run/docker.sock',
): Promise<DockerSocketProxy> {
  const env = proxyEnvironment(serviceEnvironment);
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (!allows(env, req.method ?? 'GET', req.url ?? '/')) {
      req.resume();
      res.writeHead(403, { 'cache-control': 'no-cache', connection: 'close', 'content-type': 'text/html' }).end(FORBIDDEN_BODY);
      return;
    }
    const upstream = request({ socketPath, path: req.url, method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(503, { 'content-type': 'text/plain' });
      res.end();
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
