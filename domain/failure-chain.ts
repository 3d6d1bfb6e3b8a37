/**
 * An error and the errors it wraps, outermost first. Temporal wraps what happened (an activity's
 * failure, a gRPC status) in the failures that carried it, each the `cause` of the next one out.
 * Workflow-safe: the API and the workflows read failures with the same walk.
 */
export function causeChain(err: unknown): Array<{ message?: string; code?: unknown; cause?: unknown }> {
  const chain: Array<{ cause?: unknown }> = [];
  for (let e = err as { cause?: unknown } | undefined; e && !chain.includes(e); e = e.cause as typeof e) chain.push(e);
  return chain;
}
