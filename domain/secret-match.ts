/** Whether a secret someone sent is the expected one, in constant time: both are hashed first, so not even the length leaks. */
import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (s: string) => createHash('sha256').update(s).digest();

export const secretMatches = (given: string | null | undefined, expected: string): boolean =>
  given != null && timingSafeEqual(digest(given), digest(expected));
