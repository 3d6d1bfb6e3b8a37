import { causeChain } from '../domain/failure-chain.js';

/**
 * Recognises a Temporal call that no worker answered before our deadline (`client.withDeadline`):
 * gRPC DEADLINE_EXCEEDED (4), or CANCELLED (1), which is how the client reports its own deadline
 * on some calls, anywhere in the cause chain.
 */
export function isDeadlineExceeded(err: unknown): boolean {
  return causeChain(err).some((e) => e.code === 4 || e.code === 1 || /deadline exceeded|no poller/i.test(e.message ?? ''));
}

/** A Temporal call that never reached the server: gRPC UNAVAILABLE (14) anywhere in the cause chain. */
export function isTemporalUnreachable(err: unknown): boolean {
  return causeChain(err).some((e) => e.code === 14);
}

/** A query to a workflow that was closed (terminated, timed out) before it ever ran: it has no state to answer with. */
export function isClosedBeforeFirstTask(err: unknown): boolean {
  return causeChain(err).some((e) => e.code === 9 && /closed before WorkflowTaskStarted/i.test(e.message ?? ''));
}
