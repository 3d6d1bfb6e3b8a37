/** Encoded payloads: base64, hex and escapes found in a text and decoded to screen again. */
import type { Normalised } from './normalise.js';

/** Longest single encoded run decoded (longer runs are decoded from their start only). */
const MAX_CANDIDATE_CHARS = 64 * 1024;
/** Encoded runs looked at per text; a text made of thousands of them is not decoded further. */
const MAX_CANDIDATES = 256;

interface Payload {
  kind: string;
  text: string;
}

/** Base64 runs (standard or URL-safe, MIME line breaks allowed). */
const BASE64_RUN = /[A-Za-z0-9+/_-]{16,}(?:={1,2}|(?:\r?\n[A-Za-z0-9+/]{16,})+={0,2})?/g;
const HEX_RUN =
  /\b(?:[0-9a-fA-F]{2}){12,}\b|\b[0-9a-fA-F]{2}(?:[ :,-][0-9a-fA-F]{2}){11,}\b|(?:\\x[0-9a-fA-F]{2}){6,}|(?:0x[0-9a-fA-F]{2}[ ,]*){6,}/g;
/** Every escape decoded in place on the lines that have them: percent, HTML numeric, \u, \x, JSON. */
const ESCAPE = /%[0-9a-fA-F]{2}|&#(?:x[0-9a-fA-F]{1,6}|[0-9]{1,7});|\\u[0-9a-fA-F]{4}|\\x[0-9a-fA-F]{2}|\\[nrt"]/g;

export function* encodedPayloads(text: string, hidden: Normalised['hidden']): Generator<Payload> {
  yield* hidden;
  let candidates = 0;
  for (const m of text.matchAll(BASE64_RUN)) {
    if (++candidates > MAX_CANDIDATES) break;
    const run = m[0].replace(/\s+/g, '');
    // Base64 of text mixes cases or has digits; plain words and identifiers do not.
    if (!/[A-Z]/.test(run) || !/[a-z0-9]/.test(run) || run.length % 4 === 1) continue;
    const decoded = decodeText(decodeBase64(run.slice(0, MAX_CANDIDATE_CHARS)));
    if (decoded !== null) yield { kind: 'base64', text: decoded };
  }
  candidates = 0;
  for (const m of text.matchAll(HEX_RUN)) {
    if (++candidates > MAX_CANDIDATES) break;
    const digits = m[0].replace(/\\x|0x|[ :,-]/g, '').slice(0, MAX_CANDIDATE_CHARS);
    const bytes = new Uint8Array(digits.length >> 1);
    for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(digits.slice(2 * i, 2 * i + 2), 16);
    const decoded = decodeText(bytes);
    if (decoded !== null) yield { kind: 'hex', text: decoded };
  }
  for (const unescaped of unescapeLines(text)) yield unescaped;
}

/**
 * The lines that contain escapes, decoded: as 'escapes' when there are at least four encoding
 * escapes (a disguise), else as 'json_string' when JSON escapes are there (plain tool output).
 */
function unescapeLines(text: string): Payload[] {
  ESCAPE.lastIndex = 0;
  let encoding = 0;
  let json = 0;
  const lines: number[] = [];
  // Line starts are found moving forward only: linear however many escapes share a line.
  let lineStart = 0;
  let nextBreak = text.indexOf('\n');
  for (const m of text.matchAll(ESCAPE)) {
    if (m[0].length === 2) json += 1;
    else encoding += 1;
    while (nextBreak >= 0 && nextBreak < m.index) {
      lineStart = nextBreak + 1;
      nextBreak = text.indexOf('\n', lineStart);
    }
    if (lines[lines.length - 1] !== lineStart) lines.push(lineStart);
    if (lines.length > MAX_CANDIDATES || encoding + json > MAX_CANDIDATE_CHARS) break;
  }
  if (encoding < 4 && json === 0) return [];
  let out = '';
  for (const start of lines) {
    const end = text.indexOf('\n', start);
    out +=
      decodeEscapes(text.slice(start, end < 0 ? Math.min(text.length, start + MAX_CANDIDATE_CHARS) : end).slice(0, MAX_CANDIDATE_CHARS)) +
      '\n';
    if (out.length > MAX_CANDIDATE_CHARS) break;
  }
  return [{ kind: encoding >= 4 ? 'escapes' : 'json_string', text: out }];
}

function decodeEscapes(line: string): string {
  // Percent escapes are bytes of UTF-8; collect runs of them before decoding.
  const withPercent = line.replace(/(?:%[0-9a-fA-F]{2})+/g, (run) => {
    const bytes = Uint8Array.from(run.slice(1).split('%'), (h) => parseInt(h, 16));
    return decodeUtf8(bytes) ?? run;
  });
  return withPercent
    .replace(/&#x([0-9a-fA-F]{1,6});/g, (_, h: string) => safeCodePoint(parseInt(h, 16)))
    .replace(/&#([0-9]{1,7});/g, (_, d: string) => safeCodePoint(parseInt(d, 10)))
    .replace(/\\u([0-9a-fA-F]{4})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)))
    .replace(/\\x([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)))
    .replace(/\\([nrt"])/g, (_, c: string) => (c === 'n' ? '\n' : c === 'r' ? '\r' : c === 't' ? '\t' : '"'));
}

function safeCodePoint(cp: number): string {
  return cp > 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : '';
}

const BASE64_VALUE: Int16Array = (() => {
  const table = new Int16Array(128).fill(-1);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  for (let i = 0; i < 64; i++) table[alphabet.charCodeAt(i)] = i;
  table['-'.charCodeAt(0)] = 62;
  table['_'.charCodeAt(0)] = 63;
  return table;
})();

/** Standard or URL-safe base64, padding optional; stops at the first character outside it. */
function decodeBase64(s: string): Uint8Array {
  const out = new Uint8Array(Math.floor((s.length * 3) / 4));
  let bits = 0;
  let acc = 0;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const v = c < 128 ? BASE64_VALUE[c] : -1;
    if (v < 0) break;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (acc >> bits) & 0xff;
    }
  }
  return out.subarray(0, n);
}

/** Strict UTF-8 decoding; null on any malformed sequence (binary data is not text). */
export function decodeUtf8(bytes: Uint8Array): string | null {
  let out = '';
  let chunk: number[] = [];
  for (let i = 0; i < bytes.length;) {
    const b = bytes[i];
    let cp: number;
    let need: number;
    if (b < 0x80) {
      cp = b;
      need = 0;
    } else if (b >= 0xc2 && b <= 0xdf) {
      cp = b & 0x1f;
      need = 1;
    } else if (b >= 0xe0 && b <= 0xef) {
      cp = b & 0x0f;
      need = 2;
    } else if (b >= 0xf0 && b <= 0xf4) {
      cp = b & 0x07;
      need = 3;
    } else return null;
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) return null;
      cp = (cp << 6) | (c & 0x3f);
    }
    if ((need === 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (need === 3 && (cp < 0x10000 || cp > 0x10ffff))) return null;
    chunk.push(cp);
    if (chunk.length >= 4096) {
      out += String.fromCodePoint(...chunk);
      chunk = [];
    }
    i += need + 1;
  }
  return out + String.fromCodePoint(...chunk);
}

const PRINTABLE = /[\p{L}\p{N}\p{P}\p{S}\p{Zs}]/u;

/** Decoded bytes that read as text: valid UTF-8, mostly printable. */
function decodeText(bytes: Uint8Array): string | null {
  if (bytes.length < 6) return null;
  const text = decodeUtf8(bytes);
  if (text === null) return null;
  let printable = 0;
  let total = 0;
  for (const ch of text) {
    total += 1;
    const c = ch.charCodeAt(0);
    if ((c >= 0x20 && c < 0x7f) || c === 0x0a || c === 0x0d || c === 0x09 || (c > 0x9f && PRINTABLE.test(ch))) printable += 1;
  }
  return printable / total >= 0.9 ? text : null;
}
