/** Who may do what: roles are ordered, and each grants everything the ones below it do. */
import { z } from 'zod';

export const ROLES = ['viewer', 'operator', 'approver', 'admin'] as const;
export const RoleSchema = z.enum(ROLES);
export type Role = z.infer<typeof RoleSchema>;

export const hasRole = (held: Role, needed: Role): boolean => ROLES.indexOf(held) >= ROLES.indexOf(needed);

/** The caller behind an API key: recorded as requester, approver or actor, never taken from a request body. */
export interface Identity {
  key_id: string;
  name: string;
  role: Role;
  /**
   * The person the key counts as (stores/key-store.ts countsAs): approvals count people, not keys.
   * Absent in records from before persons, where each key counted as one.
   */
  person?: string;
}

/** Who an identity counts as when approvals are counted. */
export const personOf = (identity: Identity): string => identity.person ?? identity.key_id;
