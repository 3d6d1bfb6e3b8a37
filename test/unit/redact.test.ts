import { describe, expect, it } from 'vitest';
import { redactSecrets, scrubText, scrubValue } from '../../domain/redact.js';

const PEM = [
  '-----BEGIN RSA PRIVATE KEY-----',
  'MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun',
  '-----END RSA PRIVATE KEY-----',
].join('\n');
const JWT = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U';

describe('scrubText', () => {
  it.each([
    ['a Warden API key', 'key wk_4f9Qk2lZx8Yp0aBcDeFgHiJkLmNoPqRsTuVwXyZ12 used', 'key [REDACTED:api_key] used'],
    ['a bearer token', 'Authorization: Bearer abcdef0123456789abcdef', 'Authorization: Bearer [REDACTED:token]'],
    ['a password in a URL', 'postgres://warden:s3cr3t-pw@db:5432/warden', 'postgres://warden:[REDACTED:password]@db:5432/warden'],
    ['password=', 'connect with password=hunter2&user=bob', 'connect with password=[REDACTED:password]&user=bob'],
    ['a JSON password field', '{"user":"bob","password":"hunter2"}', '{"user":"bob","password":"[REDACTED:password]"}'],
    ['an escaped JSON password field', '{"msg":"{\\"password\\":\\"hunter2\\"}"}', '{"msg":"{\\"password\\":\\"[REDACTED:password]\\"}"}'],
    [
      'an AWS secret setting',
      'AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
      'AWS_SECRET_ACCESS_KEY=[REDACTED:password]',
    ],
    ['a JWT', `token ${JWT} end`, 'token [REDACTED:jwt] end'],
    ['a PEM private key', `before\n${PEM}\nafter`, 'before\n[REDACTED:private_key]\nafter'],
    ['a cut-off PEM private key', `x ${PEM.slice(0, 80)}`, 'x [REDACTED:private_key]'],
    ['an AWS access key id', 'id AKIAIOSFODNN7EXAMPLE here', 'id [REDACTED:aws_access_key] here'],
    ['an OpenAI key', 'OPENAI sk-proj-abcdefghijklmnopqrstuvwxyz0123 ok', 'OPENAI [REDACTED:llm_key] ok'],
    ['an Anthropic key', 'sk-ant-api03-abcdefghijklmnopqrstuvwx', '[REDACTED:llm_key]'],
    ['a GitHub token', 'ghp_abcdefghijklmnopqrstuvwxyz0123456789', '[REDACTED:github_token]'],
    ['a Slack token', 'xoxb-1234567890-abcdefghij', '[REDACTED:slack_token]'],
  ])('catches %s', (_kind, text, expected) => {
    expect(scrubText(text)).toBe(expected);
  });

  it.each([
    'The agent agt-0123456789ab ran `ls -la /workspace` and exited with code 0.',
    'params_hash 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
    'Bearer authentication needs a key; see the password section of the manual.',
    'rule "secrets-skills": A skill operation that uses secrets: its default risk, raised to at least high',
    'a UUID 123e4567-e89b-12d3-a456-426614174000 and a path /home/sandbox/.ssh/known_hosts',
    'https://example.com/path?page=2&sort=asc',
    'sk-short and wk_short are not keys',
    'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==',
  ])('leaves benign text alone: %s', (text) => {
    expect(scrubText(text)).toBe(text);
  });

  it('is idempotent', () => {
    const once = scrubText(`password=hunter2 Bearer abcdef0123456789abcdef ${JWT}`);
    expect(scrubText(once)).toBe(once);
  });
});

describe('scrubValue', () => {
  it('scrubs every string in nested objects and arrays, keeping keys, numbers and null', () => {
    expect(scrubValue({ a: [`x ${JWT}`, 3, null], b: { c: 'password=hunter2' }, n: true })).toEqual({
      a: ['x [REDACTED:jwt]', 3, null],
      b: { c: 'password=[REDACTED:password]' },
      n: true,
    });
  });
});

describe('redactSecrets', () => {
  const secrets = new Map([
    ['DB_PASSWORD', 'correct horse'],
    ['LONG', 'correct horse battery staple'],
  ]);
  it('replaces each value, longest first', () => {
    expect(redactSecrets('a correct horse battery staple; b correct horse.', secrets)).toBe('a [REDACTED:LONG]; b [REDACTED:DB_PASSWORD].');
  });
  it('replaces a secret cut off at the end of truncated output, and only then', () => {
    expect(redactSecrets('value: correct hor', secrets, true)).toBe('value: [REDACTED:LONG]');
    expect(redactSecrets('value: correct hor', secrets, false)).toBe('value: correct hor');
  });
  it('leaves output without secrets unchanged', () => {
    expect(redactSecrets('nothing to see', secrets, true)).toBe('nothing to see');
  });
});
