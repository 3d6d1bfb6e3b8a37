/**
 * Redaction. `scrubText` finds credentials by their shape (Warden API keys, bearer tokens,
 * passwords in URLs and `password=` settings, JWTs, PEM private keys, AWS access key ids, LLM
 * provider keys) and replaces each with `[REDACTED:<kind>]`; `scrubValue` does the same to every
 * string inside a JSON-like value. They run on log lines, audit details and error messages, where
 * a credential may have slipped in by accident. `redactSecrets` replaces known secret values (the
 * vault's, resolved for one action) in a command's output with `[REDACTED:<NAME>]`.
 *
 * Pure: no I/O.
 */

interface Pattern {
  kind: string;
  re: RegExp;
  /** The replacement; `$1` keeps a prefix (the `Bearer ` or `password=` part). */
  to: string;
}

const R = (kind: string) => `[REDACTED:${kind}]`;
// A JSON-escaped or raw value: stops at whitespace, quotes, separators and the end of a URL's userinfo.
const VALUE = String.raw`[^\s"'&,;<>\\]+`;

const PATTERNS: Pattern[] = [
  {
    kind: 'private_key',
    // A cut-off key (no END line) is redacted to the end of the text.
    re: /-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY-----[\s\S]*?(?:-----END \1PRIVATE KEY-----|$)/g,
    to: R('private_key'),
  },
  { kind: 'jwt', re: /\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{8,}/g, to: R('jwt') },
  { kind: 'api_key', re: /\bwk_[A-Za-z0-9_-]{20,}/g, to: R('api_key') },
  { kind: 'llm_key', re: /\bsk-(?:[A-Za-z0-9]+-)*[A-Za-z0-9_]{20,}/g, to: R('llm_key') },
  { kind: 'github_token', re: /\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})/g, to: R('github_token') },
  { kind: 'slack_token', re: /\bxox[abprs]-[A-Za-z0-9-]{10,}/g, to: R('slack_token') },
  { kind: 'aws_access_key', re: /\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{16}\b/g, to: R('aws_access_key') },
  // A bearer token: 16+ characters with a digit, so prose ("Bearer authentication") stays.
  { kind: 'token', re: /\b(Bearer\s+)(?=[A-Za-z0-9._~+/=-]*\d)[A-Za-z0-9._~+/=-]{16,}/gi, to: `$1${R('token')}` },
  // scheme://user:password@host
  { kind: 'password', re: /\b([a-z][a-z0-9+.-]*:\/\/[^\s:/@"']+:)[^\s@/"']+@/gi, to: `$1${R('password')}@` },
  // password=..., "client_secret": "...", AWS_SECRET_ACCESS_KEY=..., in configs, URLs, JSON and logs.
  {
    kind: 'password',
    re: new RegExp(
      String.raw`(\b(?:[a-z0-9]+[_-])*(?:password|passwd|pwd|passphrase|secret|api[_-]?key|access[_-]?key|access[_-]?token|refresh[_-]?token|auth[_-]?token|secret[_-]?key)\b\\?["']?\s*[=:]\s*\\?["']?)(?!\[REDACTED)${VALUE}`,
      'gi',
    ),
    to: `$1${R('password')}`,
  },
];

/** The text with every credential-shaped part replaced by `[REDACTED:<kind>]`. */
export function scrubText(text: string): string {
  let out = text;
  for (const { re, to } of PATTERNS) out = out.replace(re, to);
  return out;
}

/** A copy of a JSON-like value with scrubText applied to every string (keys stay). */
export function scrubValue<T>(value: T): T {
  if (typeof value === 'string') return scrubText(value) as T;
  if (Array.isArray(value)) return value.map(scrubValue) as T;
  if (value && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, scrubValue(v)])) as T;
  }
  return value;
}

/**
 * Replaces each secret's value in `text` with `[REDACTED:<NAME>]`, longest values first (so a
 * secret that contains another is replaced whole). With `cutOff` (the output was cut at its size
 * limit), a secret's beginning at the very end of the text is replaced too.
 */
export function redactSecrets(text: string, secrets: ReadonlyMap<string, string>, cutOff = false): string {
  const byLength = [...secrets].sort(([, a], [, b]) => b.length - a.length);
  let out = text;
  for (const [name, value] of byLength) out = out.split(value).join(R(name));
  if (cutOff) {
    for (const [name, value] of byLength) {
      for (let n = value.length - 1; n > 0; n--) {
        if (out.endsWith(value.slice(0, n))) {
          out = out.slice(0, -n) + R(name);
          break;
        }
      }
    }
  }
  return out;
}
