/** Reading Temporal failures in workflow code: activity failures wrap the error that actually happened. */
import { ApplicationFailure, type ActivityFailure } from '@temporalio/workflow';

export function innermostFailure(err: unknown): ActivityFailure | ApplicationFailure | undefined {
  let cause = err as ActivityFailure | ApplicationFailure | undefined;
  while (cause?.cause) cause = cause.cause as typeof cause;
  return cause;
}

/** The innermost failure's type name (ApplicationFailure only). */
export function failureType(err: unknown): string | undefined {
  const cause = innermostFailure(err);
  return cause instanceof ApplicationFailure ? (cause.type ?? undefined) : undefined;
}

/** The innermost failure's message: what went wrong, without the wrappers' "activity task failed". */
export function failureText(err: unknown): string {
  return innermostFailure(err)?.message ?? String(err);
}
