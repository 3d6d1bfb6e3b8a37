/**
 * The Audit page: the tamper-evident log filtered by agent, action, kind and time; the chain
 * verified on demand; the whole log exported as JSON Lines. Reads the same AuditStore as /api/audit-logs.
 */
import { Hono } from 'hono';
import { AUDIT_KINDS, AuditQuerySchema, type AuditEntry } from '../../domain/audit-entry.js';
import type { AuditStore } from '../../stores/audit-store.js';
import type { KeyStore } from '../../stores/key-store.js';
import { auditLogJsonl } from '../audit/routes.js';
import { Empty, Problem, Table, Time } from './layout.js';
import { renderPage } from './render.js';
import { CONSOLE_PATH, type ConsoleEnv } from './sessions.js';

const SHOWN = 200;

export function auditRouter(audit: AuditStore, keys: KeyStore) {
  const app = new Hono<ConsoleEnv>();

  app.get('/audit', async (c) => {
    const asked = c.req.query();
    // datetime-local fields carry no zone: the page's times are UTC, and so are these.
    const when = (value: string | undefined) => (value ? `${value.length === 16 ? `${value}:00` : value}Z` : undefined);
    const filter = {
      agent_id: asked.agent_id || undefined,
      action_id: asked.action_id || undefined,
      kind: asked.kind || undefined,
      since: when(asked.since),
      until: when(asked.until),
    };
    const query = AuditQuerySchema.safeParse({ ...filter, limit: SHOWN });
    const entries = query.success ? await audit.list(query.data) : [];
    return renderPage(
      c,
      'audit',
      'Audit log',
      <>
        <form class="filters" method="get" action={`${CONSOLE_PATH}/audit`}>
          <label>
            Agent <input name="agent_id" value={asked.agent_id ?? ''} placeholder="agt-…" />
          </label>
          <label>
            Action <input name="action_id" value={asked.action_id ?? ''} placeholder="act-…" />
          </label>
          <label>
            Kind{' '}
            <select name="kind">
              <option value="">any</option>
              {AUDIT_KINDS.map((k) => (
                <option value={k} selected={k === asked.kind}>
                  {k}
                </option>
              ))}
            </select>
          </label>
          <label>
            From (UTC) <input type="datetime-local" name="since" value={asked.since ?? ''} />
          </label>
          <label>
            Until (UTC) <input type="datetime-local" name="until" value={asked.until ?? ''} />
          </label>
          <button type="submit">Filter</button>
        </form>
        <p class="tools">
          <button type="button" hx-get={`${CONSOLE_PATH}/audit/verify`} hx-target="#verification" hx-swap="innerHTML">
            Verify the chain
          </button>{' '}
          <a href={`${CONSOLE_PATH}/audit/export`} download="warden-audit.jsonl">
            Export JSON Lines
          </a>
        </p>
        <div id="verification" aria-live="polite"></div>
        {query.success ? (
          <AuditTable entries={entries} nameOf={await keyNames(keys)} />
        ) : (
          <Problem>The filter is not valid: {query.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}</Problem>
        )}
        {entries.length === SHOWN && <p class="muted">The newest {SHOWN} entries; narrow the filter or export the whole log.</p>}
      </>,
    );
  });

  app.get('/audit/verify', async (c) => {
    const v = await audit.verify();
    return c.html(
      v.ok ? (
        <p class="verdict verdict-ok" role="status">
          The chain holds: {v.entries} entries, every hash and the anchored head check out
          {v.unverified_actors.count > 0 && <> ({v.unverified_actors.count} entries name an actor nobody could verify)</>}.
        </p>
      ) : (
        <div class="verdict verdict-refused" role="alert">
          <p>The chain is broken in {v.breaks.length} places:</p>
          <ul>
            {v.breaks.map((b) => (
              <li>
                entry {b.seq}: {b.reason}
              </li>
            ))}
          </ul>
        </div>
      ),
    );
  });

  app.get('/audit/export', async (c) =>
    c.body(await auditLogJsonl(audit), 200, {
      'content-type': 'application/x-ndjson',
      'content-disposition': 'attachment; filename="warden-audit.jsonl"',
    }),
  );
  return app;
}

/** The name of the API key of this id, when it is one: audit entries name their actors by key id. */
export type KeyNames = (keyId: string) => string | undefined;

/** Every key's name, read once for the one page that renders an audit table (not on every request or poll). */
export async function keyNames(keys: KeyStore): Promise<KeyNames> {
  const names = new Map((await keys.list()).map((k) => [k.id, k.name]));
  return (keyId) => names.get(keyId);
}

export function AuditTable(props: { entries: AuditEntry[]; nameOf: KeyNames }) {
  if (props.entries.length === 0) return <Empty>No audit entries match.</Empty>;
  return (
    <Table class="audit" headings={['#', 'When', 'Kind', 'Actor', 'Agent / action', 'Details']}>
      {props.entries.map((e) => (
        <tr>
          <td>{e.seq}</td>
          <td>
            <Time at={e.at} />
          </td>
          <td>
            <code>{e.kind}</code>
          </td>
          <td>
            {e.actor ? (props.nameOf(e.actor) ?? e.actor) : '—'}
            {e.actor && props.nameOf(e.actor) && <span class="muted"> ({e.actor})</span>}
            {e.actor_verified === false && <span class="problem-text"> (unverified)</span>}
          </td>
          <td>
            {e.agent_id && <a href={`${CONSOLE_PATH}/agents/${e.agent_id}`}>{e.agent_id}</a>}{' '}
            {e.action_id && <a href={`${CONSOLE_PATH}/actions/${e.action_id}`}>{e.action_id}</a>}
          </td>
          <td>
            <code class="details">{JSON.stringify(e.details)}</code>
          </td>
        </tr>
      ))}
    </Table>
  );
}
