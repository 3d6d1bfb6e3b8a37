/**
 * Alert activities: raising an alert (start its workflow, once per event id) and delivering it to
 * one webhook. Each delivery is signed: `X-Warden-Signature: sha256=<hex>` is the HMAC-SHA256,
 * under WARDEN_ALERT_SECRET, of `<X-Warden-Timestamp>.<raw body>`; see verifyAlertSignature.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/activity';
import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import { alertWorkflowId, type AlertEvent, type AlertWorkflow, type AlertWorkflowInput } from '../domain/alert.js';
import { CONTROL_TASK_QUEUE } from '../workflows/definitions.js';
import { FailureType } from '../domain/failure-types.js';

export interface AlertSettings {
  /** Webhook URLs; none: alerts are off and no alert workflow is started. */
  webhooks: string[];
  /** The HMAC key (required with webhooks: an unsigned alert could be forged). */
  secret?: string;
}

/** A webhook's id: a hash of its URL, so URLs (which can hold tokens) stay out of workflow histories. */
export const webhookId = (url: string): string => createHash('sha256').update(url).digest('hex').slice(0, 16);

export const signAlert = (secret: string, timestamp: number, body: string): string =>
  `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;

/**
 * What a receiver does: recompute the signature over the timestamp and the raw body, compare in
 * constant time, and refuse a timestamp older than the tolerance (a replayed delivery).
 */
export function verifyAlertSignature(
  secret: string,
  headers: { signature?: string | null; timestamp?: string | null },
  body: string,
  opts: { toleranceSeconds?: number; now?: number } = {},
): boolean {
  const timestamp = Number(headers.timestamp);
  if (!headers.signature || !Number.isInteger(timestamp)) return false;
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - timestamp) > (opts.toleranceSeconds ?? 300)) return false;
  const expected = Buffer.from(signAlert(secret, timestamp, body));
  const given = Buffer.from(headers.signature);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

const DELIVERY_TIMEOUT_MS = 10_000;

export function createAlertActivities(client: Client, settings: AlertSettings) {
  const byId = new Map(settings.webhooks.map((url) => [webhookId(url), url]));

  /** Starts the event's alert workflow; a second raise of the same event is a no-op. */
  async function raiseAlert(event: AlertEvent): Promise<{ started: boolean }> {
    if (byId.size === 0) return { started: false };
    try {
      await client.workflow.start<AlertWorkflow>('alertWorkflow', {
        workflowId: alertWorkflowId(event.id),
        taskQueue: CONTROL_TASK_QUEUE,
        args: [{ event, targets: [...byId.keys()] } satisfies AlertWorkflowInput],
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
      });
      return { started: true };
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) return { started: false };
      throw err;
    }
  }

  /** POSTs the event to one webhook: 2xx delivers it; 4xx (but 408 and 429) is final; the rest is retried. */
  async function deliverAlert({ event, target }: { event: AlertEvent; target: string }): Promise<{ status: number }> {
    const url = byId.get(target);
    if (!url || !settings.secret) {
      throw ApplicationFailure.create({
        type: FailureType.WebhookNotConfigured,
        message: `webhook ${target} is no longer configured on this worker`,
        nonRetryable: true,
      });
    }
    const where = `webhook ${target} (${new URL(url).host})`;
    const body = JSON.stringify(event);
    const timestamp = Math.floor(Date.now() / 1000);
    let res: Response;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'warden-alerts',
          'x-warden-event-id': event.id,
          'x-warden-timestamp': String(timestamp),
          'x-warden-signature': signAlert(settings.secret, timestamp, body),
        },
        body,
        redirect: 'error',
        signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS),
      });
      await res.body?.cancel();
    } catch (err) {
      throw ApplicationFailure.create({ type: FailureType.WebhookUnreachable, message: `${where}: ${(err as Error).message}` });
    }
    if (res.ok) return { status: res.status };
    const final = res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429;
    throw ApplicationFailure.create({
      type: final ? FailureType.WebhookRejected : FailureType.WebhookFailed,
      message: `${where} answered ${res.status}`,
      nonRetryable: final,
    });
  }

  return { raiseAlert, deliverAlert };
}

export type AlertActivities = ReturnType<typeof createAlertActivities>;
