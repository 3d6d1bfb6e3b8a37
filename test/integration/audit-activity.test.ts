/**
 * recordAudit under Temporal's mock activity environment: a retried attempt (same key) adds
 * nothing, and a malformed entry fails without retries.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAuditActivities, type AuditReceipt, type RecordAuditInput } from '../../activities/audit.js';
import { AuditStore } from '../../stores/audit-store.js';
import { testAuditOptions } from '../support/helpers.js';

let dir: string;
let store: AuditStore;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'warden-audit-activity-'));
  store = AuditStore.open(join(dir, 'audit.db'), testAuditOptions());
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** One attempt of recordAudit, as a worker would run it. */
const attempt = (attemptNumber: number, input: RecordAuditInput): Promise<AuditReceipt> =>
  new MockActivityEnvironment({ attempt: attemptNumber }, { logger: new DefaultLogger('ERROR') }).run(
    createAuditActivities(store).recordAudit,
    input,
  ) as Promise<AuditReceipt>;

describe('recordAudit', () => {
  it('writes one entry however often the activity is retried', async () => {
    const input: RecordAuditInput = {
      key: 'act-123:1',
      kind: 'action.submitted',
      actor: 'key:ops',
      action_id: 'act-123',
      agent_id: 'agt-1',
      details: { command: ['ls', '-l'] },
      at: '2026-03-01T12:00:00.000Z',
    };
    const first = await attempt(1, input);
    const retry = await attempt(2, { ...input, at: '2026-03-01T12:00:05.000Z' });
    expect(retry).toEqual(first);
    expect(first.seq).toBe(1);
    const entries = await store.list({ action_id: 'act-123' });
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ seq: 1, hash: first.hash, at: '2026-03-01T12:00:00.000Z', actor: 'key:ops' });

    const next = await attempt(1, { ...input, key: 'act-123:2', kind: 'policy.decided', details: { rule: 'allow-ls' } });
    expect(next.seq).toBe(2);
    expect(await store.verify()).toMatchObject({ ok: true, entries: 2, breaks: [], first_broken: null });
  });

  it('fails a malformed entry without retries', async () => {
    const bad: RecordAuditInput = { key: 'k', kind: 'action.submitted', actor: 'system', details: { reason: undefined } };
    const err = await attempt(1, bad).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({
      type: 'AuditEncodingError',
      nonRetryable: true,
      message: expect.stringContaining('details.reason is undefined'),
    });
    const unknownKind = await attempt(1, { ...bad, kind: 'nope', details: {} } as unknown as RecordAuditInput).catch((e: unknown) => e);
    expect(unknownKind).toMatchObject({ type: 'InvalidAuditEntry', nonRetryable: true, message: expect.stringContaining('kind') });
    expect(await store.verify()).toMatchObject({ ok: true, entries: 0 });
  });
});
