/** Reading Temporal failures in workflow code: activity failures wrap the error that actually happened. */
import { ApplicationFailure, type ActivityFailure } from '@temporalio/workflow';
import { causeChain } from '../domain/failure-chain.js';

export function innermostFailure(err: unknown): ActivityFailure | ApplicationFailure | undefined {
  return causeChain(err).at(-1) as ActivityFailure | ApplicationFailure | undefined;
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

/** The innermost message, after the failure's type name when it has one (`NameConflict: a container named ...`). */
export function failureSummary(err: unknown): string {
  const cause = innermostFailure(err) as { message?: string; type?: string | null } | undefined;
  const message = cause?.message ?? String(err);
  const type = err instanceof ApplicationFailure ? err.type : cause?.type;
  return type ? `${type}: ${message}` : message;
}
