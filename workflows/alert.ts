/**
 * The alert workflow: one per alert event (id `warden-alert-<event id>`), delivering it to every
 * configured webhook with retries on a backoff for up to a day, so no alert is lost when the API
 * or a worker restarts, and none is sent twice by Warden (receivers should still de-duplicate on
 * the X-Warden-Event-Id header: a delivery whose answer was lost is retried).
 */
import { proxyActivities } from '@temporalio/workflow';
import type { AlertActivities } from '../activities/alerts.js';
import type { AlertDelivery, AlertWorkflow } from '../domain/alert.js';
import { refuseUndecodableInput } from '../domain/undecodable.js';
import { failureText } from './failures.js';
import { FailureType } from '../domain/failure-types.js';

const { deliverAlert } = proxyActivities<AlertActivities>({
  startToCloseTimeout: '30 seconds',
  scheduleToCloseTimeout: '24 hours',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '10 minutes',
    nonRetryableErrorTypes: [FailureType.WebhookRejected, FailureType.WebhookNotConfigured],
  },
});

export const alertWorkflow: AlertWorkflow = async (input) => {
  refuseUndecodableInput(input);
  const { event, targets } = input;
  return Promise.all(
    targets.map((target) =>
      deliverAlert({ event, target }).then(
        ({ status }): AlertDelivery => ({ target, delivered: true, status, error: null }),
        (err: Error): AlertDelivery => ({ target, delivered: false, status: null, error: failureText(err) }),
      ),
    ),
  );
};
