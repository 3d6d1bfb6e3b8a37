/**
 * The System page: each component's state and latency, capacity, the lockdown (Emergency stop and
 * Resume for admins, each confirmed by typing a word), API keys for admins (a new key is shown
 * once), and the skills and policy in force. Everything goes through the API's own services.
 */
import { Hono } from 'hono';
import { WardenError } from '../../domain/errors.js';
import type { Lockdown } from '../../domain/lockdown.js';
import { lockdownMessage } from '../../domain/lockdown.js';
import type { Policy } from '../../domain/policy.js';
import { hasRole, ROLES, type Identity } from '../../domain/roles.js';
import { SKILLS } from '../../skills/index.js';
import type { ApiKeyInfo } from '../../stores/key-store.js';
import { CreateKeyRequestSchema, type KeyService } from '../keys/service.js';
import { requireRole } from '../middleware/auth.js';
import { ReasonRequestSchema } from '../system/emergency-routes.js';
import type { LockdownService } from '../system/lockdown-service.js';
import type { SystemStatus } from '../system/routes.js';
import { Badge, CsrfField, Empty, Problem, Table, Time, WorkflowLink } from './layout.js';
import { renderPage, respond, type ConsoleLinks } from './render.js';
import { CONSOLE_PATH, type ConsoleEnv } from './sessions.js';

/** The word each lockdown form asks to be typed, so neither happens by a stray click. */
export const CONFIRM_STOP = 'STOP';
export const CONFIRM_RESUME = 'RESUME';
const GiB = 1024 ** 3;

export function systemRouter(
  deps: { system: SystemStatus; lockdown: LockdownService; keyService: KeyService; policy: Policy },
  links: ConsoleLinks,
) {
  const { system, lockdown, keyService, policy } = deps;
  const app = new Hono<ConsoleEnv>();

  app.get('/system', async (c) => {
    const identity = c.get('identity');
    const csrfToken = c.get('session').csrfToken;
    const [status, sandbox, locked] = await Promise.all([
      system.systemStatus(),
      system.sandboxInfo().catch((err: Error) => err),
      lockdown.state().catch((err: Error) => err),
    ]);
    return renderPage(
      c,
      'system',
      'System',
      <>
        <h2>Components</h2>
        <Table headings={['Component', 'State', 'Latency', 'Detail']}>
          {Object.entries(status.components).map(([name, part]) => (
            <tr>
              <td>{name.replace('_', ' ')}</td>
              <td>
                <Badge value={part.state} />
              </td>
              <td>{part.latency_ms} ms</td>
              <td>{part.detail}</td>
            </tr>
          ))}
        </Table>
        <h2>Capacity</h2>
        {sandbox instanceof Error ? (
          <Problem>Could not read the capacity: {sandbox.message}</Problem>
        ) : (
          <dl class="facts">
            <dt>Agents</dt>
            <dd>
              {sandbox.capacity.agents.used} of {sandbox.max_agents} admitted; {status.pending_actions ?? '?'} actions await approval
            </dd>
            <dt>CPU reserved</dt>
            <dd>
              {sandbox.capacity.cpu_cores.used} of {sandbox.capacity.cpu_cores.total ?? '?'} cores (admission allows{' '}
              {sandbox.capacity.admission.cpu_cores ?? '?'})
            </dd>
            <dt>Memory reserved</dt>
            <dd>
              {(sandbox.capacity.memory_bytes.used / GiB).toFixed(2)} of {((sandbox.capacity.memory_bytes.total ?? 0) / GiB).toFixed(2)} GiB
              (admission allows {((sandbox.capacity.admission.memory_bytes ?? 0) / GiB).toFixed(2)})
            </dd>
            <dt>Sandbox runtime</dt>
            <dd>
              {sandbox.runtime ?? 'none'} on host {sandbox.host} (available: {sandbox.runtimes.join(', ') || 'none'})
              {sandbox.warning && <span class="problem-text"> {sandbox.warning}</span>}
            </dd>
          </dl>
        )}
        <h2>Lockdown</h2>
        <div id="lockdown">
          <LockdownPanel state={locked} identity={identity} csrfToken={csrfToken} links={links} />
        </div>
        <h2>API keys</h2>
        {hasRole(identity.role, 'admin') ? (
          <Keys keys={await keyService.listKeys()} csrfToken={csrfToken} />
        ) : (
          <p class="muted">Managing API keys needs the admin role.</p>
        )}
        <h2>Skills</h2>
        <ul class="skills">
          {Object.values(SKILLS).map((skill) => (
            <li>
              <strong>{skill.id}</strong>: {skill.description}
              <ul>
                {Object.entries(skill.operations).map(([name, op]) => (
                  <li>
                    <code>{name}</code> <Badge value={op.risk} /> {op.description}
                  </li>
                ))}
              </ul>
            </li>
          ))}
        </ul>
        <h2>Policy in force</h2>
        <ol class="rules">
          {policy.rules.map((rule) => (
            <li>
              <code>{rule.id}</code>: {rule.description}
              <pre class="params">{JSON.stringify({ when: rule.when, then: rule.then })}</pre>
            </li>
          ))}
        </ol>
        <p class="muted">Before these rules: skill-fit (an action must fit its skill); after them: default-deny.</p>
      </>,
    );
  });

  app.post('/system/emergency-stop', requireRole('admin'), async (c) => {
    const asked = confirmedReason(await c.req.parseBody(), CONFIRM_STOP);
    let answer;
    if ('refusal' in asked) answer = <Problem>Not stopped: {asked.refusal}</Problem>;
    else {
      const outcome = await lockdown.emergencyStop(asked.reason, c.get('identity'));
      answer = (
        <div class="verdict verdict-refused" role="status">
          <p>
            Emergency stop {outcome.already_locked ? '(Warden was already locked down) ' : ''}
            {outcome.completed && outcome.report
              ? `done: ${outcome.report.counts.agents_stopped} agents stopped, ${outcome.report.counts.approvals_cancelled} approvals cancelled, ${outcome.report.counts.actions_in_flight} actions were in flight.`
              : 'started; it carries on in its workflow.'}{' '}
            <WorkflowLink ui={links.temporalUi} namespace={links.namespace} workflowId={outcome.stop_workflow_id} />
          </p>
        </div>
      );
    }
    return respond(c, 'system', 'Emergency stop', answer);
  });

  app.post('/system/resume', requireRole('admin'), async (c) => {
    const asked = confirmedReason(await c.req.parseBody(), CONFIRM_RESUME);
    let answer;
    if ('refusal' in asked) answer = <Problem>Not resumed: {asked.refusal}</Problem>;
    else {
      try {
        const resumed = await lockdown.resume(asked.reason, c.get('identity'));
        answer = (
          <p class="verdict verdict-ok" role="status">
            Lockdown lifted <Time at={resumed.resumed_at} />: new agents and actions are accepted again.
          </p>
        );
      } catch (err) {
        if (!(err instanceof WardenError)) throw err;
        answer = <Problem>Not resumed: {err.message}</Problem>;
      }
    }
    return respond(c, 'system', 'Resume', answer);
  });

  app.post('/system/keys', requireRole('admin'), async (c) => {
    const form = await c.req.parseBody();
    const request = CreateKeyRequestSchema.safeParse({
      name: form.name,
      role: form.role,
      person: typeof form.person === 'string' && form.person.trim() ? form.person : undefined,
    });
    let answer;
    if (!request.success) answer = <Problem>Not created: {request.error.issues.map((i) => i.message).join('; ')}</Problem>;
    else {
      const created = await keyService.createKey(request.data, c.get('identity'));
      answer = (
        <div class="verdict verdict-ok" role="status">
          <p>
            Created {created.id} ({created.name}, {created.role}). Copy the key now: it is shown this once and never again.
          </p>
          <input class="new-key" id="new-key" readonly value={created.key} aria-label="The new API key" />
        </div>
      );
    }
    return respond(c, 'system', 'API keys', answer);
  });

  app.post('/system/keys/:id/revoke', requireRole('admin'), async (c) => {
    let answer;
    try {
      const revoked = await keyService.revokeKey(c.req.param('id'), c.get('identity'));
      answer = (
        <p class="verdict" role="status">
          Revoked {revoked.id} ({revoked.name}): its sessions are over
          {revoked.cancelled_actions.length > 0 && (
            <>, and its actions awaiting approval were cancelled ({revoked.cancelled_actions.join(', ')})</>
          )}
          .
        </p>
      );
    } catch (err) {
      if (!(err instanceof WardenError)) throw err;
      answer = <Problem>Not revoked: {err.message}</Problem>;
    }
    return respond(c, 'system', 'API keys', answer);
  });
  return app;
}

/** The reason a lockdown form gives once its word is typed, or why the form is refused. */
function confirmedReason(form: Record<string, unknown>, word: string): { reason: string } | { refusal: string } {
  if (form.confirm !== word) return { refusal: `type ${word} to confirm.` };
  const request = ReasonRequestSchema.safeParse({ reason: form.reason });
  return request.success ? { reason: request.data.reason } : { refusal: request.error.issues.map((i) => i.message).join('; ') };
}

function LockdownPanel(props: { state: Lockdown | null | Error; identity: Identity; csrfToken: string; links: ConsoleLinks }) {
  const { state } = props;
  if (state instanceof Error) return <Problem>Could not read the lockdown: {state.message}</Problem>;
  const admin = hasRole(props.identity.role, 'admin');
  const form = (path: string, word: string, label: string, danger: boolean) => (
    <form
      class="lockdown-form"
      method="post"
      action={`${CONSOLE_PATH}/system/${path}`}
      hx-post={`${CONSOLE_PATH}/system/${path}`}
      hx-target="#lockdown-message"
      hx-swap="innerHTML"
    >
      <CsrfField token={props.csrfToken} />
      <label for={`${path}-reason`}>Reason</label>
      <input id={`${path}-reason`} name="reason" required maxlength={500} autocomplete="off" />
      <label for={`${path}-confirm`}>
        Type <code>{word}</code> to confirm
      </label>
      <input id={`${path}-confirm`} name="confirm" required autocomplete="off" pattern={word} />
      <button type="submit" class={danger ? 'reject' : 'approve'}>
        {label}
      </button>
    </form>
  );
  return (
    <>
      {state ? (
        <p class="lockdown-on" role="status">
          <strong>Locked down</strong> since <Time at={state.since} />: {lockdownMessage(state)}
        </p>
      ) : (
        <p>Not locked down: agents and actions are accepted.</p>
      )}
      <div id="lockdown-message" aria-live="polite"></div>
      {!admin ? (
        <p class="muted">The emergency stop and the resume need the admin role.</p>
      ) : state ? (
        form('resume', CONFIRM_RESUME, 'Resume', false)
      ) : (
        <>
          <p>Emergency stop: force-stops every agent, cancels every pending approval, and refuses new ones until an admin resumes.</p>
          {form('emergency-stop', CONFIRM_STOP, 'Emergency stop', true)}
        </>
      )}
    </>
  );
}

function Keys(props: { keys: ApiKeyInfo[]; csrfToken: string }) {
  return (
    <>
      <div id="keys-message" aria-live="polite"></div>
      <form
        class="key-form"
        method="post"
        action={`${CONSOLE_PATH}/system/keys`}
        hx-post={`${CONSOLE_PATH}/system/keys`}
        hx-target="#keys-message"
        hx-swap="innerHTML"
      >
        <CsrfField token={props.csrfToken} />
        <label for="key-name">Name</label>
        <input id="key-name" name="name" required maxlength={100} autocomplete="off" />
        <label for="key-person">Person (optional)</label>
        <input id="key-person" name="person" maxlength={100} autocomplete="off" />
        <label for="key-role">Role</label>
        <select id="key-role" name="role">
          {ROLES.map((r) => (
            <option value={r}>{r}</option>
          ))}
        </select>
        <button type="submit">Create key</button>
      </form>
      {props.keys.length === 0 ? (
        <Empty>No keys.</Empty>
      ) : (
        <Table headings={['Key', 'Name', 'Role', 'Counts as', 'Created', 'Revoked']}>
          {props.keys.map((k) => (
            <tr>
              <td>
                <code>{k.id}</code>
              </td>
              <td>{k.name}</td>
              <td>{k.role}</td>
              <td>{k.counts_as}</td>
              <td>
                <Time at={k.created_at} />
              </td>
              <td>
                {k.revoked_at ? (
                  <Time at={k.revoked_at} />
                ) : (
                  <form
                    method="post"
                    action={`${CONSOLE_PATH}/system/keys/${k.id}/revoke`}
                    hx-post={`${CONSOLE_PATH}/system/keys/${k.id}/revoke`}
                    hx-target="#keys-message"
                    hx-swap="innerHTML"
                  >
                    <CsrfField token={props.csrfToken} />
                    <button type="submit" class="reject" aria-label={`Revoke ${k.name}`}>
                      Revoke
                    </button>
                  </form>
                )}
              </td>
            </tr>
          ))}
        </Table>
      )}
    </>
  );
}
