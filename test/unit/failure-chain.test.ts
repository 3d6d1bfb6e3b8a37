import { describe, expect, it } from 'vitest';
import { ApplicationFailure, ActivityFailure, RetryState } from '@temporalio/common';
import { causeChain } from '../../domain/failure-chain.js';
import { isClosedBeforeFirstTask, isDeadlineExceeded, isTemporalUnreachable } from '../../api/temporal-errors.js';
import { failureSummary, failureText, failureType } from '../../workflows/failures.js';

const activityFailure = (cause: Error) =>
  new ActivityFailure('activity task failed', 'createSandbox', '1', RetryState.NON_RETRYABLE_FAILURE, undefined, cause);

describe('a failure and its causes', () => {
  it('walks from the outermost error to the innermost, and stops where a cause leads back', () => {
    const inner = new Error('inner');
    const outer = new Error('outer', { cause: inner });
    expect(causeChain(outer)).toEqual([outer, inner]);
    const looped = new Error('looped') as Error & { cause?: unknown };
    looped.cause = looped;
    expect(causeChain(looped)).toEqual([looped]);
    expect(causeChain(undefined)).toEqual([]);
  });

  it('workflows read the innermost failure: its type, its message, and both', () => {
    const err = activityFailure(
      ApplicationFailure.create({ type: 'NameConflict', message: 'a container named x exists', nonRetryable: true }),
    );
    expect(failureType(err)).toBe('NameConflict');
    expect(failureText(err)).toBe('a container named x exists');
    expect(failureSummary(err)).toBe('NameConflict: a container named x exists');
    expect(failureSummary(new Error('plain'))).toBe('plain');
  });

  it('the API finds a gRPC status anywhere in the chain', () => {
    const grpc = (code: number, message = '') => Object.assign(new Error(message), { code });
    expect(isDeadlineExceeded(new Error('wrapped', { cause: grpc(4) }))).toBe(true);
    expect(isDeadlineExceeded(new Error('wrapped', { cause: grpc(14) }))).toBe(false);
    expect(isTemporalUnreachable(new Error('wrapped', { cause: grpc(14) }))).toBe(true);
    expect(isClosedBeforeFirstTask(grpc(9, 'workflow closed before WorkflowTaskStarted'))).toBe(true);
    expect(isClosedBeforeFirstTask(grpc(9, 'something else'))).toBe(false);
  });
});
