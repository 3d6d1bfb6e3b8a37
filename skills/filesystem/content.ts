/**
 * File content in argv: execInSandbox has no stdin, so `write` sends its content base64-encoded
 * as argv elements, each under Linux's 128 KiB limit for one argument. 1 MiB of content is about
 * 1.4 MB of argv, within the 2 MiB ARG_MAX of the sandbox (8 MiB stack), under runc and runsc.
 */

/** Most bytes `write` accepts (UTF-8). */
export const MAX_CONTENT_BYTES = 1024 * 1024;

/** Base64 characters per argv element (a multiple of 4, well under 128 KiB). */
export const CONTENT_CHUNK_CHARS = 64 * 1024;

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Standard base64 without Node's Buffer, so skills stay usable from workflow code. */
export function toBase64(bytes: Uint8Array): string {
  const out: string[] = [];
  for (let i = 0; i < bytes.length; i += 3) {
    const a = bytes[i]!;
    const b = i + 1 < bytes.length ? bytes[i + 1]! : 0;
    const c = i + 2 < bytes.length ? bytes[i + 2]! : 0;
    const n = (a << 16) | (b << 8) | c;
    out.push(
      ALPHABET[(n >> 18) & 63]!,
      ALPHABET[(n >> 12) & 63]!,
      i + 1 < bytes.length ? ALPHABET[(n >> 6) & 63]! : '=',
      i + 2 < bytes.length ? ALPHABET[n & 63]! : '=',
    );
  }
  return out.join('');
}

/** The content as base64 argv elements (none for empty content). */
export function contentChunks(content: string): string[] {
  const encoded = toBase64(new TextEncoder().encode(content));
  const chunks: string[] = [];
  for (let i = 0; i < encoded.length; i += CONTENT_CHUNK_CHARS) chunks.push(encoded.slice(i, i + CONTENT_CHUNK_CHARS));
  return chunks;
}

export const utf8Length = (s: string): number => new TextEncoder().encode(s).length;
