/**
 * The deadlines the API puts on what it waits for, and what a missed one answers: a dead Docker
 * engine or a missing worker must not hang a request.
 */
import type { Client } from '@temporalio/client';
import { WardenError } from '../domain/errors.js';
import { isDeadlineExceeded } from './temporal-errors.js';

/** Rejects after `ms`, so a dead component cannot hang a caller. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A Temporal call no worker answered in time becomes 503 worker_unavailable with `message`; any other error stays itself. */
export function workerUnavailable(err: unknown, message: string): unknown {
  return isDeadlineExceeded(err) ? new WardenError('worker_unavailable', message, 503) : err;
}

/**
 * A Temporal call that needs a worker (a query or an update) within `ms`: without a worker it
 * would wait for the gRPC deadline. A missed deadline throws 503 worker_unavailable with `noWorker`.
 */
export async function askWorker<T>(client: Client, ms: number, call: () => Promise<T>, noWorker: string): Promise<T> {
  try {
    return await client.withDeadline(Date.now() + ms, call);
  } catch (err) {
    throw workerUnavailable(err, noWorker);
  }
}
