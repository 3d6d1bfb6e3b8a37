/**
 * The Approvals page: every action awaiting approval, in full, with Approve and Reject for
 * approvers; the list refreshes itself, and each decision's verdict (then the action's result)
 * appears at once above it. Decisions go through the API's own decideAction.
 */
import { Hono } from 'hono';
import { ApproveActionRequestSchema, type ActionRecord } from '../../domain/action.js';
import { WardenError } from '../../domain/errors.js';
import { hasRole, personOf, type Identity } from '../../domain/roles.js';
import type { AuditStore } from '../../stores/audit-store.js';
import type { KeyStore } from '../../stores/key-store.js';
import type { ActionService } from '../actions/service.js';
import { AuditTable, keyNames } from './audit.js';
import { requireRole } from '../middleware/auth.js';
import { absoluteTime, Badge, CsrfField, Empty, Problem, Time, WorkflowLink } from './layout.js';
import { renderPage, respond, type ConsoleLinks } from './render.js';
import { CONSOLE_PATH, type ConsoleEnv } from './sessions.js';

/** How many pending actions the page shows in full (each is a query of its workflow). */
const SHOWN = 50;
/** How often the list and a running action's result are fetched again. */
const REFRESH = 'every 2s';

const INJECTION_PREFIX = 'injection screen: ';

export function approvalsRouter(actions: ActionService, audit: AuditStore, keys: KeyStore, links: ConsoleLinks) {
  const app = new Hono<ConsoleEnv>();

  app.get('/approvals', async (c) =>
    renderPage(
      c,
      'approvals',
      'Approvals',
      <>
        <p class="lede">
          Actions waiting for a person. High-risk actions need one approval, critical ones two from different people; the requester cannot
          decide their own. You approve exactly the parameters shown (their hash is sent with your decision).
        </p>
        <div id="verdicts" aria-live="polite"></div>
        <section id="pending" hx-get={`${CONSOLE_PATH}/approvals/pending`} hx-trigger={REFRESH} hx-swap="innerHTML">
          <PendingList
            actions={await pendingInFull(actions)}
            identity={c.get('identity')}
            csrfToken={c.get('session').csrfToken}
            links={links}
          />
        </section>
      </>,
    ),
  );

  app.get('/approvals/pending', async (c) =>
    c.html(
      <PendingList
        actions={await pendingInFull(actions)}
        identity={c.get('identity')}
        csrfToken={c.get('session').csrfToken}
        links={links}
      />,
    ),
  );

  app.post('/actions/:id/decision', requireRole('approver'), async (c) => {
    const id = c.req.param('id');
    const form = await c.req.parseBody();
    const approved = form.verdict === 'approve';
    let verdict;
    try {
      if (!/^act-[0-9a-f]{16}$/.test(id)) throw new WardenError('invalid_request', `no action ${id}`, 400);
      if (form.verdict !== 'approve' && form.verdict !== 'reject')
        throw new WardenError('invalid_request', 'choose Approve or Reject', 400);
      // The REST API's own schema: the same limits on the comment, the same form of hash.
      const request = ApproveActionRequestSchema.safeParse({
        approved,
        comment: typeof form.comment === 'string' && form.comment.trim() ? form.comment.trim() : undefined,
        params_hash: form.params_hash,
      });
      if (!request.success) throw new WardenError('invalid_request', request.error.issues.map((i) => i.message).join('; '), 400);
      const decided = await actions.decideAction(id, c.get('identity'), request.data);
      verdict = <Verdict id={id} approved={approved} status={decided.status} />;
    } catch (err) {
      if (!(err instanceof WardenError)) throw err;
      verdict = <Refusal id={id} error={err} />;
    }
    return respond(c, 'approvals', 'Your decision', verdict);
  });

  app.get('/actions/:id', async (c) => {
    const id = c.req.param('id');
    if (!/^act-[0-9a-f]{16}$/.test(id)) throw new WardenError('not_found', `there is no action ${id}`, 404);
    const action = await actions.getAction(id);
    return renderPage(
      c,
      'approvals',
      `Action ${id}`,
      <>
        {action.status === 'pending' ? (
          <PendingAction action={action} identity={c.get('identity')} csrfToken={c.get('session').csrfToken} links={links} />
        ) : (
          <article class="card">
            <p>
              <Badge value={action.status} /> {action.skill_id}.{action.operation} on{' '}
              <a href={`${CONSOLE_PATH}/agents/${action.agent_id}`}>{action.agent_id}</a>
            </p>
            <ActionFacts action={action} links={links} />
            <Outcome action={action} />
          </article>
        )}
        <h2>Audit trail</h2>
        <AuditTable entries={await audit.list({ action_id: id, limit: 200 })} nameOf={await keyNames(keys)} />
      </>,
    );
  });

  // A decided action's progress, fetched again by the verdict until the action is final.
  app.get('/actions/:id/outcome', async (c) => c.html(<Outcome action={await actions.getAction(c.req.param('id'))} />));

  return app;
}

async function pendingInFull(actions: ActionService): Promise<{ records: ActionRecord[]; more: boolean } | { error: string }> {
  try {
    const pending = await actions.pendingActions(SHOWN + 1);
    const records = await Promise.all(pending.slice(0, SHOWN).map((p) => actions.getAction(p.id).catch(() => null)));
    // Visibility lags a decision by a moment: what is no longer pending is left out.
    return { records: records.filter((r): r is ActionRecord => r?.status === 'pending'), more: pending.length > SHOWN };
  } catch (err) {
    if (err instanceof WardenError) return { error: err.message };
    throw err;
  }
}

function PendingList(props: {
  actions: { records: ActionRecord[]; more: boolean } | { error: string };
  identity: Identity;
  csrfToken: string;
  links: ConsoleLinks;
}) {
  if ('error' in props.actions) return <Problem>Could not list the pending actions: {props.actions.error}</Problem>;
  const { records, more } = props.actions;
  if (records.length === 0) return <Empty>Nothing awaits approval. New requests appear here on their own.</Empty>;
  return (
    <>
      {records.map((action) => (
        <PendingAction action={action} identity={props.identity} csrfToken={props.csrfToken} links={props.links} />
      ))}
      {more && <p class="muted">Showing the newest {SHOWN}; decide these and the next ones appear.</p>}
    </>
  );
}

function PendingAction(props: { action: ActionRecord; identity: Identity; csrfToken: string; links: ConsoleLinks }) {
  const { action, identity } = props;
  const own = personOf(action.requester) === personOf(identity);
  return (
    <article class="card pending" id={`pending-${action.id}`} aria-labelledby={`title-${action.id}`}>
      <header>
        <h2 id={`title-${action.id}`}>
          <Badge value={action.security_level} /> {action.skill_id}.{action.operation}{' '}
          <span class="muted">
            on <a href={`${CONSOLE_PATH}/agents/${action.agent_id}`}>{action.agent_id}</a>
          </span>
        </h2>
        <p class="countdown">
          <span data-countdown={action.expires_at ?? ''}>expires</span>
          {action.expires_at && <span class="abs"> (at {absoluteTime(action.expires_at)})</span>}
        </p>
      </header>
      <ActionFacts action={action} links={props.links} />
      {hasRole(identity.role, 'approver') ? (
        // Kept as it is while the list refreshes, so a comment being typed is not lost.
        <form
          class="decide"
          id={`decide-${action.id}`}
          hx-preserve="true"
          method="post"
          action={`${CONSOLE_PATH}/actions/${action.id}/decision`}
          hx-post={`${CONSOLE_PATH}/actions/${action.id}/decision`}
          hx-target="#verdicts"
          hx-swap="afterbegin"
        >
          <CsrfField token={props.csrfToken} />
          <input type="hidden" name="params_hash" value={action.params_hash} />
          <label for={`comment-${action.id}`}>Comment</label>
          <input id={`comment-${action.id}`} name="comment" type="text" maxlength={2000} autocomplete="off" />
          <button type="submit" name="verdict" value="approve" class="approve">
            Approve
          </button>
          <button type="submit" name="verdict" value="reject" class="reject">
            Reject
          </button>
          {own && <span class="muted"> You requested this: someone else must decide it.</span>}
        </form>
      ) : (
        <p class="muted">Deciding needs the approver role; you are {identity.role}.</p>
      )}
    </article>
  );
}

/** What an approver reviews: who asked, why the level, what the screen found, the exact parameters and their hash. */
function ActionFacts(props: { action: ActionRecord; links: ConsoleLinks }) {
  const { action } = props;
  const findings = action.reasons.filter((r) => r.startsWith(INJECTION_PREFIX)).map((r) => r.slice(INJECTION_PREFIX.length));
  const why = action.reasons.filter((r) => !r.startsWith(INJECTION_PREFIX));
  return (
    <>
      <dl class="facts">
        <dt>Action</dt>
        <dd>
          <a href={`${CONSOLE_PATH}/actions/${action.id}`}>{action.id}</a> ·{' '}
          <WorkflowLink ui={props.links.temporalUi} namespace={props.links.namespace} workflowId={action.id} />
        </dd>
        <dt>Requested by</dt>
        <dd>
          {action.requester.name} ({action.requester.role}) · <Time at={action.created_at} />
        </dd>
        <dt>Risk</dt>
        <dd>
          {action.security_level}, by rule <code>{action.rule}</code>
          {why.length > 0 && (
            <ul>
              {why.map((r) => (
                <li>{r}</li>
              ))}
            </ul>
          )}
        </dd>
        <dt>Injection screen</dt>
        <dd>{findings.length ? findings.join('; ') : 'nothing found'}</dd>
        <dt>Approvals</dt>
        <dd class="approvals-count">
          {action.approvals.filter((a) => a.approved).length} of {action.approvals_required}
          {action.approvals.map((a) => (
            <span class="muted">
              {' '}
              · {a.approver.name}
              {a.comment ? `: “${a.comment}”` : ''}
            </span>
          ))}
        </dd>
        <dt>Parameters hash</dt>
        <dd>
          <code class="hash">{action.params_hash}</code>
        </dd>
      </dl>
      <pre class="params" aria-label="Exact parameters">
        {JSON.stringify(action.parameters, null, 2)}
      </pre>
    </>
  );
}

function Verdict(props: { id: string; approved: boolean; status: string }) {
  const { id, status } = props;
  const said = !props.approved
    ? 'rejected: it will not run'
    : status === 'pending'
      ? 'your approval is recorded; it needs a second person'
      : status === 'expired'
        ? 'expired: it will not run'
        : 'approved: it runs now';
  return (
    <div class={`verdict verdict-${props.approved ? status : 'rejected'}`} role="status">
      <p>
        <a href={`${CONSOLE_PATH}/actions/${id}`}>{id}</a>: {said}.
      </p>
      {props.approved && status !== 'pending' && status !== 'expired' && <OutcomePoll id={id} />}
    </div>
  );
}

const OutcomePoll = (props: { id: string }) => (
  <div hx-get={`${CONSOLE_PATH}/actions/${props.id}/outcome`} hx-trigger="load delay:1s" hx-swap="outerHTML">
    <p class="muted">Waiting for the result…</p>
  </div>
);

/** The decision was not taken: the workflow's or the API's reason, as they gave it. */
function Refusal(props: { id: string; error: WardenError }) {
  const reason = props.error.message;
  const said = props.error.code === 'invalid_request' ? 'not sent' : /\bis expired\b/.test(reason) ? 'expired' : 'not allowed';
  return (
    <div class="verdict verdict-refused" role="alert">
      <p>
        <a href={`${CONSOLE_PATH}/actions/${props.id}`}>{props.id}</a>: {said}: {reason}
      </p>
    </div>
  );
}

export function Outcome(props: { action: ActionRecord }) {
  const { action } = props;
  if (!action.completed_at) return <OutcomePoll id={action.id} />;
  return (
    <div class="outcome" id={`outcome-${action.id}`}>
      <p>
        <Badge value={action.status} />
        {action.result && (
          <>
            {' '}
            exit code {action.result.exit_code}, {action.result.duration_ms} ms
          </>
        )}
        {action.error && <> {action.error}</>}
      </p>
      {action.result?.stdout && (
        <pre class="output" aria-label="Standard output">
          {action.result.stdout}
        </pre>
      )}
      {action.result?.stderr && (
        <pre class="output stderr" aria-label="Standard error">
          {action.result.stderr}
        </pre>
      )}
    </div>
  );
}
