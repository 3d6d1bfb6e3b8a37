/** Recognises a Temporal call that no worker answered in time: gRPC DEADLINE_EXCEEDED anywhere in the cause chain. */
export function isDeadlineExceeded(err: unknown): boolean {
  for (let e = err as { code?: unknown; message?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e.code === 4 || /deadline exceeded|no poller/i.test(e.message ?? '')) return true;
  }
  return false;
}
