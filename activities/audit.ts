/**
 * Audit activities: how workflows write to the audit log. The workflow builds each entry's key
 * from its workflow id and its own count of audit entries, both part of its deterministic state,
 * so a retried activity (or a replayed workflow) finds the entry already written and adds nothing.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { ZodError } from 'zod';
import { AuditIntegrityError, type AuditStore } from '../stores/audit-store.js';
import { AuditEncodingError, type AuditAppendInput } from '../domain/audit-entry.js';
import { FailureType } from '../domain/failure-types.js';

/** What a workflow passes to recordAudit (workflows: `import type`). */
export type RecordAuditInput = AuditAppendInput;

/** Where the entry landed; the entry itself stays out of the workflow's history. */
export interface AuditReceipt {
  seq: number;
  hash: string;
}

export function createAuditActivities(store: AuditStore) {
  async function recordAudit(input: RecordAuditInput): Promise<AuditReceipt> {
    try {
      const entry = await store.append(input);
      return { seq: entry.seq, hash: entry.hash };
    } catch (err) {
      // A malformed entry stays malformed however often it is retried.
      if (err instanceof ZodError) {
        const problems = err.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ');
        throw ApplicationFailure.create({
          type: FailureType.InvalidAuditEntry,
          message: `invalid audit entry: ${problems}`,
          nonRetryable: true,
        });
      }
      if (err instanceof AuditEncodingError) {
        throw ApplicationFailure.create({ type: err.name, message: `invalid audit entry: ${err.message}`, nonRetryable: true });
      }
      // Retried: the workflow waits, unaudited, until an operator has looked at the log.
      if (err instanceof AuditIntegrityError) throw ApplicationFailure.create({ type: err.name, message: err.message });
      throw err;
    }
  }
  return { recordAudit };
}

export type AuditActivities = ReturnType<typeof createAuditActivities>;
