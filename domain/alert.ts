/**
 * Alert events sent to the configured webhooks. An event id is made once, by whoever raises the
 * alert, and names its alert workflow (`warden-alert-<id>`): the same alert is never sent twice.
 * Workflow-safe: no I/O. Events carry ids, counts and reasons, never a secret.
 */
export const ALERT_TYPES = [
  'agent.error',
  'approval.pending',
  'capacity.high',
  'emergency_stop',
  'emergency_resume',
  'component.down',
] as const;
export type AlertType = (typeof ALERT_TYPES)[number];

export type AlertSeverity = 'info' | 'warning' | 'critical';

export interface AlertEvent {
  id: string;
  type: AlertType;
  time: string;
  severity: AlertSeverity;
  summary: string;
  details: Record<string, unknown>;
}

export const alertWorkflowId = (eventId: string): string => `warden-alert-${eventId}`;

export interface AlertWorkflowInput {
  event: AlertEvent;
  /** The webhooks, by id (a hash of the URL): URLs can hold tokens and stay out of the history. */
  targets: string[];
}

/** One webhook's outcome. */
export interface AlertDelivery {
  target: string;
  delivered: boolean;
  status: number | null;
  error: string | null;
}

/**
 * The alert workflow's signature, here so that the activity starting it need not import the
 * workflow, which imports the activity's types (the import goes one way).
 */
export type AlertWorkflow = (input: AlertWorkflowInput) => Promise<AlertDelivery[]>;
