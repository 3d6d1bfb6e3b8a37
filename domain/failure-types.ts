/**
 * The type names of Warden's failures (`ApplicationFailure.type`): activities and workflows throw
 * them, retry policies list them as non-retryable, and the API reads them to answer the caller.
 * Workflow-safe. The values are written into workflow histories: never change one.
 */
export const FailureType = {
  AgentExists: 'AgentExists',
  AgentNotFound: 'AgentNotFound',
  AgentNotRunning: 'AgentNotRunning',
  CapacityExceeded: 'CapacityExceeded',
  EmergencyStopNotStarted: 'EmergencyStopNotStarted',
  ExecOutlived: 'ExecOutlived',
  /** A retried command whose earlier attempt already collected its result: it is never run twice. */
  ExecResultCollected: 'ExecResultCollected',
  HostCapacityExceeded: 'HostCapacityExceeded',
  ImageMissing: 'ImageMissing',
  InvalidAuditEntry: 'InvalidAuditEntry',
  Lockdown: 'Lockdown',
  NameConflict: 'NameConflict',
  NotLocked: 'NotLocked',
  NotOurContainer: 'NotOurContainer',
  SandboxExited: 'SandboxExited',
  /** The host has no sandbox runtime that meets the agent's demands (SandboxUnavailableError's name). */
  SandboxUnavailable: 'SandboxUnavailable',
  SecretNotFound: 'SecretNotFound',
  SecretUnreadable: 'SecretUnreadable',
  Unauthorized: 'Unauthorized',
  VaultUnavailable: 'VaultUnavailable',
  WebhookFailed: 'WebhookFailed',
  WebhookNotConfigured: 'WebhookNotConfigured',
  WebhookRejected: 'WebhookRejected',
  WebhookUnreachable: 'WebhookUnreachable',
  /** The worker's shutdown has begun: an activity that never ends on its own hands itself back, to be retried elsewhere. */
  WorkerShutdown: 'WorkerShutdown',
} as const;
export type FailureType = (typeof FailureType)[keyof typeof FailureType];
