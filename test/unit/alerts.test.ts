/**
 * Alerts without Temporal: the configuration rows, the signature a receiver checks, and how a
 * delivery answers each kind of webhook response (final, retried, delivered).
 */
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApplicationFailure } from '@temporalio/common';
import type { Client } from '@temporalio/client';
import { loadConfig } from '../../domain/config.js';
import type { AlertEvent } from '../../domain/alert.js';
import { createAlertActivities, signAlert, verifyAlertSignature, webhookId } from '../../activities/alerts.js';

const SECRET = 'unit-test-alert-secret-0123456789';

describe('alert configuration', () => {
  it('is off by default, with the default thresholds', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({ alertWebhooks: [], alertApprovalPendingSeconds: 900, alertCapacityPercent: 90 });
    expect(config.alertSecret).toBeUndefined();
  });

  it('reads comma-separated webhooks and their secret', () => {
    const config = loadConfig({ WARDEN_ALERT_WEBHOOKS: 'https://a.example/hook, http://10.0.0.2:9000/x', WARDEN_ALERT_SECRET: SECRET });
    expect(config.alertWebhooks).toEqual(['https://a.example/hook', 'http://10.0.0.2:9000/x']);
  });

  it.each([
    [{ WARDEN_ALERT_WEBHOOKS: 'https://a.example/hook' }, /WARDEN_ALERT_SECRET: required when WARDEN_ALERT_WEBHOOKS is set/],
    [
      { WARDEN_ALERT_WEBHOOKS: 'ftp://a.example/x', WARDEN_ALERT_SECRET: SECRET },
      /WARDEN_ALERT_WEBHOOKS: each webhook must be an http\(s\) URL/,
    ],
    [{ WARDEN_ALERT_WEBHOOKS: 'not a url', WARDEN_ALERT_SECRET: SECRET }, /WARDEN_ALERT_WEBHOOKS/],
    [{ WARDEN_ALERT_WEBHOOKS: 'https://a.example/hook', WARDEN_ALERT_SECRET: 'short' }, /WARDEN_ALERT_SECRET: at least 32 characters/],
    [{ WARDEN_ALERT_CAPACITY_PERCENT: '101' }, /WARDEN_ALERT_CAPACITY_PERCENT/],
    [{ WARDEN_ALERT_APPROVAL_PENDING_SECONDS: '0' }, /WARDEN_ALERT_APPROVAL_PENDING_SECONDS/],
  ])('refuses %o', (env, message) => {
    expect(() => loadConfig(env)).toThrow(message);
  });
});

describe('signature', () => {
  const body = '{"id":"evt-1","type":"emergency_stop"}';
  const now = 1_800_000_000;
  const headers = { signature: signAlert(SECRET, now, body), timestamp: String(now) };

  it('verifies over the timestamp and the raw body', () => {
    expect(headers.signature).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(verifyAlertSignature(SECRET, headers, body, { now })).toBe(true);
  });

  it('refuses another secret, a changed body, a changed timestamp, a missing header', () => {
    expect(verifyAlertSignature(`${SECRET}x`, headers, body, { now })).toBe(false);
    expect(verifyAlertSignature(SECRET, headers, body.replace('1', '2'), { now })).toBe(false);
    expect(verifyAlertSignature(SECRET, { ...headers, timestamp: String(now + 1) }, body, { now })).toBe(false);
    expect(verifyAlertSignature(SECRET, { timestamp: headers.timestamp }, body, { now })).toBe(false);
  });

  it('refuses a replay older than the tolerance', () => {
    expect(verifyAlertSignature(SECRET, headers, body, { now: now + 299 })).toBe(true);
    expect(verifyAlertSignature(SECRET, headers, body, { now: now + 301 })).toBe(false);
  });
});

describe('delivery', () => {
  let server: Server;
  let base: string;
  const seen: Array<{ headers: Record<string, unknown>; body: string }> = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        seen.push({ headers: req.headers, body });
        res.writeHead(Number(req.url!.slice(1))).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(() => server.close());

  const event: AlertEvent = {
    id: 'evt-unit',
    type: 'emergency_stop',
    time: '2026-11-28T00:00:00Z',
    severity: 'critical',
    summary: 's',
    details: {},
  };
  const deliverTo = (status: number) => {
    const url = `${base}/${status}`;
    // raiseAlert is not called here: delivery needs no Temporal client.
    const { deliverAlert } = createAlertActivities({} as Client, { webhooks: [url], secret: SECRET });
    return deliverAlert({ event, target: webhookId(url) });
  };
  const failure = async (status: number) => {
    const err = await deliverTo(status).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    return err as ApplicationFailure;
  };

  it('delivers on 2xx, signed, with the event id', async () => {
    expect(await deliverTo(204)).toEqual({ status: 204 });
    const last = seen.at(-1)!;
    expect(last.body).toBe(JSON.stringify(event));
    expect(last.headers['x-warden-event-id']).toBe('evt-unit');
    expect(
      verifyAlertSignature(
        SECRET,
        { signature: last.headers['x-warden-signature'] as string, timestamp: last.headers['x-warden-timestamp'] as string },
        last.body,
      ),
    ).toBe(true);
  });

  it.each([400, 401, 404, 410])('gives up on %i', async (status) => {
    expect(await failure(status)).toMatchObject({ type: 'WebhookRejected', nonRetryable: true });
  });

  it.each([408, 429, 500, 503])('retries on %i', async (status) => {
    expect(await failure(status)).toMatchObject({ type: 'WebhookFailed', nonRetryable: false });
  });

  it('retries an unreachable webhook, and never names its path or query', async () => {
    const url = 'http://127.0.0.1:1/hook?token=sekrit';
    const { deliverAlert } = createAlertActivities({} as Client, { webhooks: [url], secret: SECRET });
    const err = (await deliverAlert({ event, target: webhookId(url) }).catch((e: unknown) => e)) as ApplicationFailure;
    expect(err).toMatchObject({ type: 'WebhookUnreachable', nonRetryable: false });
    expect(err.message).not.toMatch(/sekrit|\/hook/);
  });

  it('refuses a webhook no longer configured', async () => {
    const { deliverAlert } = createAlertActivities({} as Client, { webhooks: [], secret: SECRET });
    expect(await deliverAlert({ event, target: 'deadbeefdeadbeef' }).catch((e: unknown) => e)).toMatchObject({
      type: 'WebhookNotConfigured',
      nonRetryable: true,
    });
  });

  it('starts no alert workflow without webhooks', async () => {
    const { raiseAlert } = createAlertActivities({} as Client, { webhooks: [] });
    expect(await raiseAlert(event)).toEqual({ started: false });
  });
});
