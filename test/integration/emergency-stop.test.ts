/**
 * Emergency stop and alerts on real Temporal and Docker: 20 running agents and pending approvals,
 * the stop ends every one of them, the lockdown refuses new agents and actions (at the API and in
 * the workflows started directly), survives a restart of the workers and a new API instance, and
 * the resume lifts it. Alerts reach a local webhook receiver, signed, once each, through retries.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alertWorkflowId, type AlertEvent } from '../../domain/alert.js';
import type { ActionRecord } from '../../domain/action.js';
import type { AgentRecord } from '../../domain/agent.js';
import { actionHash, Grants } from '../../domain/grants.js';
import { verifyAlertSignature } from '../../activities/alerts.js';
import { prepareCommand } from '../../skills/index.js';
import {
  CAPACITY_WORKFLOW_ID,
  capacityQuery,
  CONTROL_TASK_QUEUE,
  type ActionWorkflowInput,
  type AgentWorkflowInput,
} from '../../workflows/definitions.js';
import { freePort } from '../support/global-setup.js';
import {
  containersOf,
  docker,
  recordHistory,
  startStack,
  submitShell,
  TEST_HOST,
  testPayloadCodec,
  uniqueId,
  waitFor,
  waitForStatus,
} from '../support/helpers.js';
import Docker from 'dockerode';
import { WorkflowFailedError } from '@temporalio/client';
import { createWorkers } from '../../workers/create-workers.js';
import { WORKFLOWS_PATH } from '../../workers/bundle.js';
import { Worker } from '@temporalio/worker';
import { WORKFLOW_TRACING_MODULE } from '../../telemetry/tracing.js';
import { createWorkerDataConverter } from '../../domain/data-converter.js';

type Stack = Awaited<ReturnType<typeof startStack>>;

const SECRET = 'test-alert-secret-0123456789abcdef';
const FLAKY_FAILURES = 2;
const AGENTS = 20;
const LOCKDOWN_MESSAGE =
  /^Warden is in emergency lockdown since \S+ by test admin: drill: everything stops; an admin must POST \/api\/system\/resume$/;

/** A webhook receiver: /hook always answers 200; /flaky answers 503 to the first attempts of each event. */
interface Delivery {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  answered: number;
}
const deliveries: Delivery[] = [];
let receiver: Server;
let port: number;

function startReceiver(): Promise<void> {
  const attempts = new Map<string, number>();
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      const id = String(req.headers['x-warden-event-id']);
      const n = (attempts.get(`${req.url}:${id}`) ?? 0) + 1;
      attempts.set(`${req.url}:${id}`, n);
      const answered = req.url === '/flaky' && n <= FLAKY_FAILURES ? 503 : 200;
      deliveries.push({ path: req.url ?? '', headers: req.headers, body, answered });
      res.writeHead(answered).end();
    });
  });
  return new Promise((resolve) => receiver.listen(port, '127.0.0.1', resolve));
}

const received = (path: string, eventId: string) => deliveries.filter((d) => d.path === path && d.headers['x-warden-event-id'] === eventId);

/** Waits for an alert of this type (and matching this predicate) to be delivered to /hook; checks its signature. */
async function alertOf(type: AlertEvent['type'], match: (e: AlertEvent) => boolean = () => true): Promise<AlertEvent> {
  const delivery = await waitFor(`a ${type} alert`, async () =>
    deliveries.find(
      (d) => d.path === '/hook' && d.answered === 200 && (JSON.parse(d.body) as AlertEvent).type === type && match(JSON.parse(d.body)),
    ),
  );
  const signed = {
    signature: delivery.headers['x-warden-signature'] as string,
    timestamp: delivery.headers['x-warden-timestamp'] as string,
  };
  expect(verifyAlertSignature(SECRET, signed, delivery.body)).toBe(true);
  expect(verifyAlertSignature('another-secret-0123456789abcdefgh', signed, delivery.body)).toBe(false);
  expect(verifyAlertSignature(SECRET, signed, delivery.body.replace('"', ' "'))).toBe(false);
  expect(delivery.body).not.toContain(SECRET);
  return JSON.parse(delivery.body) as AlertEvent;
}

let stack: Stack;
let operator: string;
let approver: string;
const agentIds: string[] = [];
const pendingIds: string[] = [];

const config = () => ({
  alertWebhooks: [`http://127.0.0.1:${port}/hook`, `http://127.0.0.1:${port}/flaky`],
  alertSecret: SECRET,
  alertApprovalPendingSeconds: 2,
});
const smallAgent = (agent_id: string) => ({
  skill_id: 'shell',
  agent_id,
  runtime: 'runc',
  resource_limits: { memory_mb: 32, disk_mb: 4, cpu_cores: 0.1, max_processes: 32 },
});

beforeAll(async () => {
  port = await freePort();
  await startReceiver();
  stack = await startStack({ config: config() });
  operator = await stack.keyFor('operator');
  approver = await stack.keyFor('approver');
});
afterAll(async () => {
  // Whatever happened, leave no lockdown behind for the next test file.
  await stack?.api('POST', '/api/system/resume', { reason: 'test cleanup' });
  await stack?.stop();
  receiver?.close();
});

async function as(key: string, method: string, path: string, body?: unknown) {
  const res = await stack.realApp.request(path, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any };
}

describe('before the stop', () => {
  it('refuses a bad reason and a key below admin', async () => {
    expect((await stack.api('POST', '/api/system/emergency-stop', {})).body.error.message).toMatch(/reason/);
    expect((await stack.api('POST', '/api/system/emergency-stop', { reason: ' ' })).status).toBe(400);
    expect((await stack.api('POST', '/api/system/emergency-stop', { reason: 'x'.repeat(501) })).status).toBe(400);
    expect((await stack.api('POST', '/api/system/emergency-stop', { reason: 'x', extra: 1 })).status).toBe(400);
    expect((await as(operator, 'POST', '/api/system/emergency-stop', { reason: 'no' })).status).toBe(403);
    expect((await stack.api('POST', '/api/system/resume', { reason: 'not locked' })).status).toBe(409);
    expect((await as(await stack.keyFor('viewer'), 'GET', '/api/system/lockdown')).body).toMatchObject({ locked: false, since: null });
  });

  it(`runs ${AGENTS} agents`, async () => {
    for (let i = 0; i < AGENTS; i++) agentIds.push(uniqueId(`estop${i}`));
    const created = await Promise.all(agentIds.map((id) => stack.api('POST', '/api/agents', smallAgent(id))));
    expect(created.map((r) => r.status)).toEqual(agentIds.map(() => 201));
    for (const id of agentIds) await waitForStatus(stack.api, id, ['running'], 120_000);
  }, 240_000);

  it('holds shell actions for approval, and alerts when one has waited past the threshold', async () => {
    for (const id of agentIds.slice(0, 4)) {
      const res = await as(operator, 'POST', '/api/actions', {
        action_type: 'skill_execution',
        skill_id: 'shell',
        operation: 'exec',
        agent_id: id,
        parameters: { command: 'touch /workspace/never' },
      });
      expect(res.body.status).toBe('pending');
      pendingIds.push(res.body.id);
    }
    const alert = await alertOf('approval.pending', (e) => e.details.action_id === pendingIds[0]);
    expect(alert).toMatchObject({
      id: `approval-pending-${pendingIds[0]}`,
      severity: 'warning',
      details: { agent_id: agentIds[0], approvals_required: 1 },
    });
    expect(JSON.stringify(alert)).not.toContain('touch /workspace/never');
  });

  it('alerts when an agent enters error (its container removed outside Warden)', async () => {
    const id = uniqueId('victim');
    expect((await stack.api('POST', '/api/agents', smallAgent(id))).status).toBe(201);
    const running = await waitForStatus(stack.api, id, ['running']);
    await docker.getContainer(running.container_id!).remove({ force: true });
    await waitForStatus(stack.api, id, ['error']);
    const alert = await alertOf('agent.error', (e) => e.details.agent_id === id);
    expect(alert.id).toBe(`agent-error-${id}`);
    expect(alert.summary).toMatch(/exited unexpectedly|disappeared|outside Warden/);
    await stack.client.workflow.getHandle(id).result();
    await recordHistory('agent-error-alert', id);
  });
});

describe('component down', () => {
  it("alerts when the reaper cannot reach a Docker host's engine", async () => {
    // A sandbox worker for a host whose engine socket does not exist: every engine call fails.
    const host = `dead-${randomBytes(4).toString('hex')}`;
    const deadHost = await createWorkers({
      temporal: { address: stack.config.temporalAddress },
      namespace: 'default',
      dockerHostId: host,
      roles: ['sandbox'],
      payloadCodec: testPayloadCodec(),
      docker: new Docker({ socketPath: '/nonexistent/docker.sock' }),
      shutdownGraceTime: '1 second',
    });
    const running = deadHost.run();
    try {
      const run = stack.client.workflow.execute('reaperWorkflow', {
        taskQueue: CONTROL_TASK_QUEUE,
        workflowId: `reaper-test-${host}`,
        args: [{ host }],
      });
      await expect(run).rejects.toBeInstanceOf(WorkflowFailedError);
      const alert = await alertOf('component.down', (e) => e.details.host === host);
      expect(alert).toMatchObject({ severity: 'critical', details: { component: 'docker_host' } });
      expect(alert.summary).toBe(`Docker host ${host}: the reaper cannot reach its Docker engine or its sandbox worker`);
      expect(String(alert.details.error)).toMatch(/ENOENT|nonexistent/);
    } finally {
      deadHost.shutdown();
      await running;
    }
  }, 120_000);
});

describe('the emergency stop', () => {
  let report: any;

  it('locks down, force-stops every agent, cancels every pending approval, and reports it', async () => {
    const res = await stack.api('POST', '/api/system/emergency-stop', { reason: 'drill: everything stops' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      locked: true,
      already_locked: false,
      completed: true,
      lockdown: { by_name: 'test admin', reason: 'drill: everything stops' },
    });
    report = res.body.report;
    expect(report.stop_workflow_id).toBe(res.body.stop_workflow_id);
    expect(report.stop_workflow_id).toMatch(/^warden-emergency-stop-[0-9a-f-]{36}-\d+$/);
    expect(report.agents_stopped).toEqual(expect.arrayContaining(agentIds));
    expect(report.approvals_cancelled).toEqual(expect.arrayContaining(pendingIds));
    expect(report.counts).toEqual({
      agents_stopped: report.agents_stopped.length,
      approvals_cancelled: report.approvals_cancelled.length,
      actions_in_flight: report.actions_in_flight.length,
    });
    await recordHistory('emergency-stop', report.stop_workflow_id);
  });

  it('every agent ends stopped, its container gone', async () => {
    for (const id of agentIds) {
      const agent = await waitForStatus(stack.api, id, ['stopped'], 90_000);
      expect(agent.exit_code).toBe(137); // forced: SIGKILL at once
      expect(await containersOf(id)).toHaveLength(0);
    }
    const stopped = (await stack.audit.list({ agent_id: agentIds[0], kind: 'agent.stopped' }))[0]!;
    expect(stopped.actor).not.toBe('system'); // the admin behind the stop
  }, 180_000);

  it('every pending approval is cancelled, with the reason, on the record and the audit log', async () => {
    for (const id of pendingIds) {
      const action = await waitFor(`action ${id} to end`, async () => {
        const res = await stack.api('GET', `/api/actions/${id}`);
        return res.body.completed_at ? (res.body as ActionRecord) : undefined;
      });
      expect(action).toMatchObject({ status: 'cancelled', error: 'cancelled: emergency stop: drill: everything stops', result: null });
      const cancelled = await stack.audit.list({ action_id: id, kind: 'action.cancelled' });
      expect(cancelled).toHaveLength(1);
      expect(cancelled[0]!.details).toEqual({ reason: 'emergency stop: drill: everything stops' });
    }
    await recordHistory('action-cancelled-by-stop', pendingIds[0]!);
    expect((await stack.api('GET', '/api/actions/pending')).body.actions.map((a: { id: string }) => a.id)).not.toEqual(
      expect.arrayContaining([pendingIds[0]]),
    );
    expect((await stack.audit.list({ kind: 'system.lockdown', limit: 1 }))[0]!.details).toMatchObject({
      reason: 'drill: everything stops',
      by_name: 'test admin',
    });
    expect((await stack.audit.list({ kind: 'system.emergency_stop', limit: 1 }))[0]!.details).toMatchObject({ counts: report.counts });
  });

  it('says so at GET /api/system/lockdown', async () => {
    const res = await as(await stack.keyFor('viewer'), 'GET', '/api/system/lockdown');
    expect(res.body).toMatchObject({
      locked: true,
      by_name: 'test admin',
      reason: 'drill: everything stops',
      stop_workflow_id: report.stop_workflow_id,
    });
    expect(res.body.message).toMatch(LOCKDOWN_MESSAGE);
  });

  it('refuses new agents and new actions at the API with the lockdown message', async () => {
    const agent = await stack.api('POST', '/api/agents', smallAgent(uniqueId('refused')));
    expect(agent.status).toBe(423);
    expect(agent.body.error).toMatchObject({ code: 'lockdown', message: expect.stringMatching(LOCKDOWN_MESSAGE) });
    const action = await submitShell(stack.api, agentIds[0]!, 'echo hi');
    expect(action.status).toBe(423);
    expect(action.body.error.message).toMatch(LOCKDOWN_MESSAGE);
    expect((await stack.audit.list({ kind: 'system.lockdown_refused', limit: 10 })).length).toBeGreaterThanOrEqual(2);
  });

  it('refuses, in the workflows, an action and an agent started directly with the client', async () => {
    const template = (await stack.api('GET', `/api/actions/${pendingIds[0]}`)).body as ActionRecord;
    const action: ActionRecord = {
      ...template,
      id: `act-${randomBytes(8).toString('hex')}`,
      status: 'approved',
      approvals_required: 0,
      approvals: [],
      error: null,
      completed_at: null,
    };
    // Even with a grant the API would have signed (so the lockdown, not a missing grant, refuses it).
    const grant = new Grants(testPayloadCodec().keyring).sign({
      kind: 'action',
      action_id: action.id,
      action_hash: action.params_hash,
      requester: action.requester,
      level: action.security_level,
      approvals_required: 0,
      expires_at: new Date(Date.now() + 600_000).toISOString(),
    });
    const input: ActionWorkflowInput = {
      action,
      command: prepareCommand('shell', 'exec', { command: 'touch /workspace/never' }),
      grant,
      expirySeconds: 60,
    };
    const direct = await stack.client.workflow.execute('actionWorkflow', {
      workflowId: action.id,
      taskQueue: CONTROL_TASK_QUEUE,
      args: [input],
    });
    expect(direct).toMatchObject({ status: 'rejected', error: expect.stringMatching(LOCKDOWN_MESSAGE), result: null });
    expect((await stack.audit.list({ action_id: action.id, limit: 20 })).map((e) => e.kind)).not.toContain('execution.started');
    await recordHistory('action-lockdown-refused', action.id);

    // One that needs no approval is refused by the lockdown read right before it would run.
    const subject = {
      action_type: 'skill_execution' as const,
      skill_id: 'filesystem',
      operation: 'info',
      agent_id: action.agent_id,
      parameters: {},
    };
    const low: ActionRecord = {
      ...action,
      ...subject,
      id: `act-${randomBytes(8).toString('hex')}`,
      params_hash: actionHash(subject),
      security_level: 'low',
    };
    const lowGrant = new Grants(testPayloadCodec().keyring).sign({
      kind: 'action',
      action_id: low.id,
      action_hash: low.params_hash,
      requester: low.requester,
      level: 'low',
      approvals_required: 0,
      expires_at: new Date(Date.now() + 600_000).toISOString(),
    });
    const lowInput: ActionWorkflowInput = {
      action: low,
      command: prepareCommand('filesystem', 'info', {}),
      grant: lowGrant,
      expirySeconds: 60,
    };
    const lowDone = await stack.client.workflow.execute('actionWorkflow', {
      workflowId: low.id,
      taskQueue: CONTROL_TASK_QUEUE,
      args: [lowInput],
    });
    expect(lowDone).toMatchObject({
      status: 'rejected',
      security_level: 'low',
      error: expect.stringMatching(LOCKDOWN_MESSAGE),
      result: null,
    });
    const lowKinds = (await stack.audit.list({ action_id: low.id, limit: 20 })).reverse().map((e) => e.kind);
    expect(lowKinds).toEqual(['action.submitted', 'policy.decided', 'system.lockdown_refused']);
    await recordHistory('action-lockdown-refused-at-lookup', low.id);

    const agentId = uniqueId('direct');
    const agentInput: AgentWorkflowInput = {
      agentId,
      skillId: 'shell',
      host: TEST_HOST,
      image: stack.config.sandboxImage,
      limits: smallAgent(agentId).resource_limits as never,
      runtime: 'runc',
      requireSandbox: false,
      idleTtlSeconds: 60,
      stopGraceSeconds: 1,
      createdAt: new Date().toISOString(),
    };
    const agent = (await stack.client.workflow.execute('agentWorkflow', {
      workflowId: agentId,
      taskQueue: CONTROL_TASK_QUEUE,
      args: [agentInput],
    })) as AgentRecord;
    expect(agent.status).toBe('error');
    expect(agent.error_message).toMatch(/^Lockdown: Warden is in emergency lockdown/);
    expect(agent.container_id).toBeNull();
    expect(await containersOf(agentId)).toHaveLength(0);
    await recordHistory('agent-lockdown-refused', agentId);
  });

  it('alerts every webhook once, signed; the flaky one gets it after its failures', async () => {
    const alert = await alertOf('emergency_stop');
    expect(alert).toMatchObject({ severity: 'critical', details: { reason: 'drill: everything stops', counts: report.counts } });
    expect(received('/hook', alert.id)).toHaveLength(1);
    await waitFor(
      'the flaky webhook to accept the alert',
      async () => received('/flaky', alert.id).some((d) => d.answered === 200),
      60_000,
    );
    const flaky = received('/flaky', alert.id);
    expect(flaky.map((d) => d.answered)).toEqual([...Array(FLAKY_FAILURES).fill(503), 200]);
    expect(new Set(flaky.map((d) => d.body)).size).toBe(1); // the same event each time
    await waitFor(
      'the alert workflow to end',
      async () => (await stack.client.workflow.getHandle(alertWorkflowId(alert.id)).describe()).status.name === 'COMPLETED',
    );
    await recordHistory('alert-after-retries', alertWorkflowId(alert.id));
  });
});

describe('after the stop', () => {
  it('the lockdown survives a restart of the workers and a new API instance', async () => {
    await stack.stop();
    stack = await startStack({ config: config() });
    const state = await stack.api('GET', '/api/system/lockdown');
    expect(state.body).toMatchObject({ locked: true, reason: 'drill: everything stops' });
    expect((await stack.api('POST', '/api/agents', smallAgent(uniqueId('still')))).status).toBe(423);
  });

  it('a second stop keeps the first lockdown and sweeps again', async () => {
    const again = await stack.api('POST', '/api/system/emergency-stop', { reason: 'drill: again' });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ already_locked: true, lockdown: { reason: 'drill: everything stops' } });
    expect(again.body.report.agents_stopped).not.toEqual(expect.arrayContaining([agentIds[0]]));
  });

  it('resume lifts it: a new agent runs again', async () => {
    const res = await stack.api('POST', '/api/system/resume', { reason: 'drill over' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ locked: false, lifted: { reason: 'drill: everything stops' } });
    expect((await stack.api('GET', '/api/system/lockdown')).body.locked).toBe(false);
    expect((await stack.audit.list({ kind: 'system.lockdown_lifted', limit: 1 }))[0]!.details).toMatchObject({ reason: 'drill over' });
    const id = uniqueId('after');
    expect((await stack.api('POST', '/api/agents', smallAgent(id))).status).toBe(201);
    await waitForStatus(stack.api, id, ['running']);
    await stack.api('POST', `/api/agents/${id}/stop`, { force: true });
    await waitForStatus(stack.api, id, ['stopped']);
    const alert = await alertOf('emergency_resume');
    expect(alert.details).toMatchObject({ reason: 'drill over', by_name: 'test admin' });
    expect((await stack.api('POST', '/api/system/resume', { reason: 'twice' })).status).toBe(409);
    // The capacity workflow's history so far: lockdowns, refused admissions, stops started, the resume.
    await recordHistory('capacity-lockdown', CAPACITY_WORKFLOW_ID);
  });

  it("the capacity runs that started the stops replay on a worker with tracing on (its span ids draw on the workflow's random numbers)", async () => {
    const stops: string[] = [];
    for await (const run of stack.client.workflow.list({ query: `WorkflowId = '${CAPACITY_WORKFLOW_ID}'` })) {
      const history = await stack.client.workflow.getHandle(CAPACITY_WORKFLOW_ID, run.runId).fetchHistory();
      for (const e of history.events ?? []) {
        const child = e.startChildWorkflowExecutionInitiatedEventAttributes;
        if (child?.workflowType?.name === 'emergencyStopWorkflow') stops.push(child.workflowId!);
      }
      await Worker.runReplayHistory(
        {
          workflowsPath: WORKFLOWS_PATH,
          interceptors: { workflowModules: [WORKFLOW_TRACING_MODULE] },
          sinks: { exporter: { export: { fn: () => undefined } } },
          dataConverter: createWorkerDataConverter(testPayloadCodec()),
        },
        history,
        `${CAPACITY_WORKFLOW_ID}/${run.runId}`,
      );
    }
    expect(stops.length).toBeGreaterThanOrEqual(2);
  }, 120_000);
});

describe('capacity alert', () => {
  it('alerts when an admission reaches the threshold', async () => {
    // The capacity workflow is shared by the suite: put the threshold at the next admission.
    const held = Object.keys((await stack.client.workflow.getHandle(CAPACITY_WORKFLOW_ID).query(capacityQuery)).admitted).length;
    const full = await startStack({ workers: false, config: { ...config(), maxAgents: held + 1, alertCapacityPercent: 100 } });
    try {
      const id = uniqueId('cap');
      expect((await full.api('POST', '/api/agents', smallAgent(id))).status).toBe(201);
      const alert = await alertOf('capacity.high', (e) => e.details.max_agents === held + 1);
      expect(alert).toMatchObject({ severity: 'warning', details: { admitted: held + 1, threshold_percent: 100 } });
      await waitForStatus(stack.api, id, ['running']);
      await stack.api('POST', `/api/agents/${id}/stop`, { force: true });
      await waitForStatus(stack.api, id, ['stopped']);
    } finally {
      await full.stop();
    }
  });
});
