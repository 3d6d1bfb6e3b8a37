/**
 * The authorization matrix: each route, the least role it needs, and the status an allowed caller
 * gets for the request here. test/integration/auth.test.ts checks it against the OpenAPI document and every
 * role; test/integration/schemathesis.test.ts holds the lower roles' runs to it.
 */
import { ROLES, type Role } from '../../domain/roles.js';

// Each route, the least role it needs, and the status an allowed caller gets for this request.
export const ROUTES: Array<[method: string, path: string, body: unknown, needs: Role, allowed: number]> = [
  ['GET', '/api/agents', undefined, 'viewer', 200],
  ['GET', '/api/agents/no-such-agent', undefined, 'viewer', 404],
  ['GET', '/api/agents/no-such-agent/stats', undefined, 'viewer', 404],
  ['GET', '/api/sandbox', undefined, 'viewer', 200],
  ['GET', '/api/status', undefined, 'viewer', 200],
  ['POST', '/api/agents', {}, 'operator', 400],
  ['POST', '/api/agents/no-such-agent/pause', undefined, 'operator', 404],
  ['POST', '/api/agents/no-such-agent/resume', undefined, 'operator', 404],
  ['POST', '/api/agents/no-such-agent/stop', {}, 'operator', 404],
  ['POST', '/api/actions', {}, 'operator', 400],
  ['GET', '/api/actions/pending', undefined, 'viewer', 200],
  ['GET', '/api/actions/act-0000000000000000', undefined, 'viewer', 404],
  ['POST', '/api/actions/act-0000000000000000/approve', {}, 'approver', 400],
  ['GET', '/api/audit-logs', undefined, 'viewer', 200],
  ['GET', '/api/audit-logs/verify', undefined, 'viewer', 200],
  ['GET', '/api/audit-logs/export', undefined, 'viewer', 200],
  ['GET', '/api/skills', undefined, 'viewer', 200],
  ['POST', '/api/security/validate', { text: 'list the files' }, 'viewer', 200],
  ['GET', '/api/keys', undefined, 'admin', 200],
  ['POST', '/api/keys', {}, 'admin', 400],
  ['DELETE', '/api/keys/key_000000000000', undefined, 'admin', 404],
  ['POST', '/api/keys/key_000000000000/confirm', undefined, 'admin', 404],
  ['GET', '/api/secrets', undefined, 'admin', 200],
  ['PUT', '/api/secrets/MATRIX_SECRET', {}, 'admin', 400],
  ['DELETE', '/api/secrets/NO_SUCH_SECRET', undefined, 'admin', 404],
  ['POST', '/api/secrets/rotate', undefined, 'admin', 200],
  ['POST', '/codec/decode', { payloads: [] }, 'viewer', 200],
  // The Temporal CLI asks to encode nothing before each query: a viewer may; encoding anything is an admin's.
  ['POST', '/codec/encode', { payloads: [] }, 'viewer', 200],
  ['POST', '/codec/encode', {}, 'viewer', 200],
  ['POST', '/codec/encode', { payloads: [{ metadata: { encoding: btoa('json/plain') }, data: btoa('"forged"') }] }, 'admin', 200],
  ['POST', '/api/system/emergency-stop', {}, 'admin', 400],
  ['POST', '/api/system/resume', {}, 'admin', 400],
  ['GET', '/api/system/lockdown', undefined, 'viewer', 200],
  ['GET', '/api/channels', undefined, 'viewer', 200],
  ['GET', '/api/channels/pairings', undefined, 'admin', 200],
  ['POST', '/api/channels/pairings', {}, 'admin', 400],
  ['DELETE', '/api/channels/pairings/discord:1', undefined, 'admin', 404],
  // Any key may confirm a pairing, but only the one it links to (test/integration/channels.test.ts).
  ['POST', '/api/channels/pairings/discord:1/confirm', undefined, 'viewer', 404],
  ['GET', '/api/providers', undefined, 'viewer', 200],
  ['GET', '/api/providers/no-such-provider/health', undefined, 'viewer', 404],
  ['GET', '/api/providers/no-such-provider/models', undefined, 'viewer', 404],
  ['GET', '/api/conversations', undefined, 'operator', 200],
  ['POST', '/api/conversations', {}, 'operator', 400],
  ['GET', '/api/conversations/cnv-0000000000000000', undefined, 'operator', 404],
  ['GET', '/api/conversations/cnv-0000000000000000/events', undefined, 'operator', 404],
  ['POST', '/api/conversations/cnv-0000000000000000/messages', { message: 'hello' }, 'operator', 404],
  ['POST', '/api/conversations/cnv-0000000000000000/cancel', undefined, 'operator', 404],
  ['POST', '/api/conversations/cnv-0000000000000000/end', undefined, 'operator', 404],
  ['POST', '/api/chat', {}, 'operator', 400],
];

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];

export interface DocumentedRoute {
  /** "POST /api/agents/{id}/stop" */
  route: string;
  method: string;
  template: string;
  /** Declared open (security: []): it needs no key. */
  open: boolean;
}

/** Every operation of the OpenAPI document. */
export function documentedRoutes(doc: { paths: Record<string, Record<string, unknown>> }): DocumentedRoute[] {
  return Object.entries(doc.paths).flatMap(([template, item]) =>
    Object.entries(item)
      .filter(([m]) => METHODS.includes(m))
      .map(([m, op]) => ({
        route: `${m.toUpperCase()} ${template}`,
        method: m.toUpperCase(),
        template,
        open: Array.isArray((op as { security?: unknown[] }).security) && (op as { security: unknown[] }).security.length === 0,
      })),
  );
}

/** The documented route a concrete request goes to: a fixed path wins over a template, as in the router. */
export function routeOf(documented: DocumentedRoute[], method: string, path: string): DocumentedRoute | undefined {
  const same = documented.filter((d) => d.method === method);
  const exact = same.find((d) => d.template === path);
  if (exact) return exact;
  const hits = same.filter((d) => templatePattern(d.template).test(path));
  if (hits.length > 1) throw new Error(`${method} ${path} matches several documented routes: ${hits.map((d) => d.route).join(', ')}`);
  return hits[0];
}

const templatePattern = (template: string) =>
  new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\\?\{[^}]+\\?\}/g, '[^/]+')}$`);

/** The least role any row of the matrix gives a documented route (POST /codec/encode: viewer, for an empty list). */
export function leastRoles(documented: DocumentedRoute[]): Map<string, Role> {
  const least = new Map<string, Role>();
  for (const [method, path, , needs] of ROUTES) {
    const hit = routeOf(documented, method, path);
    if (!hit) continue;
    const known = least.get(hit.route);
    if (!known || ROLES.indexOf(needs) < ROLES.indexOf(known)) least.set(hit.route, needs);
  }
  return least;
}
