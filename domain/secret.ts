/**
 * Secret names and values: what the vault stores and what a shell action names. A name is what the
 * command sees as an environment variable, so it has an environment variable's shape. Pure zod:
 * skills (and so workflows) import it.
 */
import { z } from 'zod';

export const MAX_SECRET_BYTES = 64 * 1024;
/** Secrets one action may name. */
export const MAX_SECRETS_PER_ACTION = 32;

export const SecretNameSchema = z
  .string()
  .regex(
    /^[A-Z_][A-Z0-9_]{0,63}$/,
    'a secret name is 1-64 characters of A-Z, 0-9 and _, not starting with a digit (an environment variable name)',
  )
  // The WARDEN_ prefix is kept for Warden's own variables, which a secret must never override.
  .refine((name) => !name.startsWith('WARDEN_'), 'names starting with WARDEN_ are reserved for Warden');

export const SecretValueSchema = z
  .string()
  .min(1, 'a secret value must not be empty')
  .refine((v) => new TextEncoder().encode(v).length <= MAX_SECRET_BYTES, `a secret value is at most ${MAX_SECRET_BYTES} bytes of UTF-8`)
  // An environment variable cannot hold a NUL byte.
  .refine((v) => !v.includes('\0'), 'a secret value must not contain a NUL byte');

/** The secrets an action names: unique, each a valid name. */
export const SecretNamesSchema = z
  .array(SecretNameSchema)
  .min(1, 'list at least one secret, or leave secrets out')
  .max(MAX_SECRETS_PER_ACTION, `at most ${MAX_SECRETS_PER_ACTION} secrets`)
  .refine((names) => new Set(names).size === names.length, 'each secret may be named once');
