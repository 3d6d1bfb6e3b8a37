/**
 * The audit store's contract, on each back end (SQLite and PostgreSQL): the hash chain,
 * idempotent appends, appends from several processes, the database refusing changes, every kind
 * of tampering done with plain SQL past its guards (every break reported), the head's anchor
 * against a log rewritten whole, actors checked, ill-formed strings, canonical encoding, JSON
 * Lines export; and, for the SQLite file, the CLI and logs from older versions.
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AuditIntegrityError, AuditStore } from '../../stores/audit-store.js';
import {
  AuditEncodingError,
  AuditEntrySchema,
  GENESIS_HASH,
  SYSTEM_ACTORS,
  canonicalJson,
  hashEntry,
  type AuditEntry,
} from '../../domain/audit-entry.js';
import { Keyring } from '../../domain/keyring.js';
import { PROJECT_ROOT } from '../../scripts/dev-server.js';
import { STORE_BACKENDS, type StorePlace } from '../support/store-backends.js';

/** A master key for these tests only. */
const MASTER_KEY = Buffer.from('audit-store-TEST-ONLY-master-key').toString('base64');
const keyring = () => Keyring.load({ masterKey: MASTER_KEY, dataDir: tmpdir() });
/** The key ids the key store knows, for these tests. */
const KNOWN_KEY_IDS = new Set(['key:ops']);
const options = () => ({ keyring: keyring(), isKnownKeyId: (id: string) => KNOWN_KEY_IDS.has(id) });

describe.each(STORE_BACKENDS)('on $backend', ({ backend, place: makePlace }) => {
  let place: StorePlace;
  let store: AuditStore;

  beforeEach(async () => {
    place = await makePlace();
    store = await place.openAudit(options());
  });

  afterEach(async () => {
    await store.close();
    await place.close();
  });

  const KINDS = ['action.submitted', 'policy.decided', 'approval.requested', 'approval.granted', 'execution.started'] as const;

  async function seed(n: number): Promise<AuditEntry[]> {
    const out: AuditEntry[] = [];
    for (let i = 1; i <= n; i++) {
      out.push(
        await store.append({
          key: `wf-${Math.ceil(i / 5)}:${i}`,
          kind: KINDS[(i - 1) % KINDS.length],
          actor: i % 2 ? 'key:ops' : 'system',
          action_id: `act-${Math.ceil(i / 5)}`,
          agent_id: 'agt-1',
          details: { i, rule: { id: `r${i}`, effect: 'allow' }, tags: ['a', i] },
        }),
      );
    }
    return out;
  }

  /** Plain SQL on the log's tables, as someone who holds the database would do; the guards go first. */
  const tamper = (sql: string, ...params: unknown[]) => place.tamper('audit', sql, ...params);

  /** Moves every entry from `from` on one seq up, leaving a hole at `from`. */
  function openHole(from: number) {
    return tamper(`UPDATE entries SET seq = -seq - 1 WHERE seq >= ${from}; UPDATE entries SET seq = -seq WHERE seq < 0`);
  }

  const insertRow = (e: AuditEntry) =>
    tamper(
      'INSERT INTO entries (seq, key, at, kind, actor, action_id, agent_id, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      e.seq,
      e.key,
      e.at,
      e.kind,
      e.actor,
      e.action_id,
      e.agent_id,
      canonicalJson(e.details),
      e.prev_hash,
      e.hash,
    );

  const forged = (seq: number, prev_hash: string): AuditEntry => {
    const fields = {
      seq,
      key: 'forged',
      at: '2026-01-01T00:00:00.000Z',
      kind: 'approval.granted' as const,
      actor: 'key:mallory',
      actor_verified: null,
      action_id: 'act-1',
      agent_id: 'agt-1',
      details: { approved: true },
      prev_hash,
    };
    return { ...fields, hash: hashEntry(fields) };
  };

  describe('the chain', () => {
    it('links every entry to the one before and records the head', async () => {
      const entries = await seed(12);
      expect(entries.map((e) => e.seq)).toEqual([...Array(12).keys()].map((i) => i + 1));
      expect(entries[0].prev_hash).toBe(GENESIS_HASH);
      for (const [i, e] of entries.entries()) {
        expect(AuditEntrySchema.parse(e)).toEqual(e);
        expect(e.hash).toBe(hashEntry(e));
        if (i > 0) expect(e.prev_hash).toBe(entries[i - 1].hash);
      }
      expect(await store.head()).toEqual({ seq: 12, hash: entries[11].hash });
      expect(await store.verify()).toMatchObject({ ok: true, entries: 12, breaks: [], first_broken: null });
    });

    it('verifies an empty log', async () => {
      expect(await store.verify()).toMatchObject({ ok: true, entries: 0, breaks: [], first_broken: null });
    });

    it('hashes the previous hash, a newline and the canonical encoding of every other field', async () => {
      const e = await store.append({
        key: 'k',
        kind: 'agent.created',
        actor: 'system',
        agent_id: 'agt-1',
        details: { b: 1, a: [true, null] },
        at: '2026-02-03T04:05:06.789Z',
      });
      const canonical =
        '{"action_id":null,"actor":"system","actor_verified":true,"agent_id":"agt-1","at":"2026-02-03T04:05:06.789Z","details":{"a":[true,null],"b":1},' +
        `"key":"k","kind":"agent.created","prev_hash":"${GENESIS_HASH}","seq":1}`;
      const { createHash } = await import('node:crypto');
      expect(e.hash).toBe(createHash('sha256').update(`${GENESIS_HASH}\n${canonical}`).digest('hex'));
    });

    it('stays unchanged and survives reopening', async () => {
      const entries = await seed(3);
      await store.close();
      store = await place.openAudit(options());
      expect(await store.list()).toEqual([...entries].reverse());
      expect((await store.append({ key: 'after-reopen', kind: 'system.started', actor: 'system', details: {} })).prev_hash).toBe(
        entries[2].hash,
      );
      expect((await store.verify()).ok).toBe(true);
    });

    it('the database refuses UPDATE and DELETE on entries from a plain SQL connection (past its guards, the chain catches it)', async () => {
      const entries = await seed(2);
      // PostgreSQL: Warden's own role lacks the privilege, and the trigger stops even the superuser.
      const refused = backend === 'SQLite' ? [/append-only/] : [/permission denied/, /append-only/];
      for (const sql of ["UPDATE entries SET actor = 'x' WHERE seq = 1", 'DELETE FROM entries WHERE seq = 2', 'DELETE FROM entries']) {
        const outcomes = await place.attempt('audit', sql);
        expect(outcomes).toHaveLength(refused.length);
        outcomes.forEach((outcome, i) => expect(outcome, sql).toMatch(refused[i]!));
      }
      if (backend === 'PostgreSQL') {
        for (const outcome of await place.attempt('audit', 'TRUNCATE entries')) expect(outcome).toMatch(/permission denied|append-only/);
        for (const outcome of await place.attempt('audit', 'DELETE FROM head')) expect(outcome).toMatch(/permission denied|append-only/);
      }
      expect(await store.list()).toEqual([...entries].reverse());
      expect(await store.verify()).toMatchObject({ ok: true, entries: 2 });
    });
  });

  describe('append', () => {
    it('is idempotent by key: the first write wins, nothing is inserted twice', async () => {
      await seed(2);
      const first = await store.append({
        key: 'wf-x:1',
        kind: 'approval.refused',
        actor: 'key:bob',
        action_id: 'act-9',
        details: { why: 'self-approval' },
      });
      const again = await store.append({
        key: 'wf-x:1',
        kind: 'approval.granted',
        actor: 'key:eve',
        action_id: 'act-9',
        details: { why: 'different' },
      });
      expect(again).toEqual(first);
      expect(await store.list({ action_id: 'act-9' })).toEqual([first]);
      expect(await store.verify()).toMatchObject({ ok: true, entries: 3 });
    });

    it('validates its input and writes nothing when it is bad', async () => {
      await expect(store.append({ key: '', kind: 'agent.created', actor: 'system', details: {} })).rejects.toThrow();
      // @ts-expect-error an unknown kind
      await expect(store.append({ key: 'k', kind: 'agent.exploded', actor: 'system', details: {} })).rejects.toThrow();
      await expect(store.append({ key: 'k', kind: 'agent.created', actor: 'system', details: {}, at: 'yesterday' })).rejects.toThrow();
      await expect(store.append({ key: 'k', kind: 'agent.created', actor: 'system', details: { n: NaN } })).rejects.toThrow(
        AuditEncodingError,
      );
      await expect(store.append({ key: 'k', kind: 'agent.created', actor: 'system', details: { reason: undefined } })).rejects.toThrow(
        /details\.reason is undefined/,
      );
      expect(await store.verify()).toMatchObject({ ok: true, entries: 0 });
    });

    it('keeps the time it is given', async () => {
      const e = await store.append({ key: 'k', kind: 'action.expired', actor: 'system', details: {}, at: '2026-05-01T10:00:00.000Z' });
      expect(e.at).toBe('2026-05-01T10:00:00.000Z');
    });
  });

  describe('list', () => {
    it('returns entries newest first, filtered and paged', async () => {
      await seed(12);
      expect((await store.list()).map((e) => e.seq)).toEqual([12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
      expect((await store.list({ limit: 3 })).map((e) => e.seq)).toEqual([12, 11, 10]);
      expect((await store.list({ limit: 3, before_seq: 10 })).map((e) => e.seq)).toEqual([9, 8, 7]);
      expect((await store.list({ action_id: 'act-2' })).map((e) => e.seq)).toEqual([10, 9, 8, 7, 6]);
      expect((await store.list({ kind: 'policy.decided' })).map((e) => e.seq)).toEqual([12, 7, 2]);
      expect(await store.list({ agent_id: 'agt-none' })).toEqual([]);
      await expect(store.list({ limit: 1001 })).rejects.toThrow();
      await expect(store.list({ limit: 0 })).rejects.toThrow();
    });
  });

  describe('verify finds the first broken link', () => {
    let entries: AuditEntry[];
    beforeEach(async () => {
      entries = await seed(10);
    });
    const broken = async () => (await store.verify()).first_broken;

    it('a changed detail', async () => {
      await tamper(`UPDATE entries SET details = '{"i":5,"rule":{"effect":"deny","id":"r5"},"tags":["a",5]}' WHERE seq = 5`);
      expect(await store.verify()).toMatchObject({ ok: false, entries: 10 });
      expect(await broken()).toEqual({ seq: 5, reason: expect.stringMatching(/entry 5 was changed/) });
    });

    // Plain SQL past the guards, and the first break verify reports.
    it.each([
      { name: 'a changed actor', sql: "UPDATE entries SET actor = 'key:admin' WHERE seq = 3", seq: 3, reason: /entry 3 was changed/ },
      {
        name: 'details that no longer parse',
        sql: "UPDATE entries SET details = '{oops' WHERE seq = 2",
        seq: 2,
        reason: /entry 2 was changed/,
      },
      {
        name: 'a changed last entry',
        sql: "UPDATE entries SET kind = 'approval.granted' WHERE seq = 10",
        seq: 10,
        reason: /entry 10 was changed/,
      },
      {
        name: 'a deleted entry in the middle, the later ones renumbered to hide the gap',
        sql: 'DELETE FROM entries WHERE seq = 5; UPDATE entries SET seq = -(seq - 1) WHERE seq > 5; UPDATE entries SET seq = -seq WHERE seq < 0',
        seq: 5,
        reason: /entry 5 was deleted and the later entries renumbered: seq 5 holds the entry written as entry 6/,
      },
      {
        name: 'a deleted last entry (caught by the head)',
        sql: 'DELETE FROM entries WHERE seq = 10',
        seq: 10,
        reason: /entry 10 is missing.*newest entries were deleted/,
      },
      {
        name: 'two swapped entries',
        sql: 'UPDATE entries SET seq = -3 WHERE seq = 3; UPDATE entries SET seq = 3 WHERE seq = 7; UPDATE entries SET seq = 7 WHERE seq = -3',
        seq: 3,
        reason: /reordered.*written as entry 7.*entry 3 is now at seq 7/,
      },
      {
        name: 'two swapped neighbours',
        sql: 'UPDATE entries SET seq = -4 WHERE seq = 4; UPDATE entries SET seq = 4 WHERE seq = 5; UPDATE entries SET seq = 5 WHERE seq = -4',
        seq: 4,
        reason: /reordered/,
      },
    ])('$name', async ({ sql, seq, reason }) => {
      await tamper(sql);
      expect(await broken()).toEqual({ seq, reason: expect.stringMatching(reason) });
    });

    it('a deleted entry in the middle', async () => {
      await tamper('DELETE FROM entries WHERE seq = 5');
      expect(await store.verify()).toMatchObject({ ok: false, entries: 9 });
      expect(await broken()).toEqual({ seq: 5, reason: expect.stringMatching(/entry 5 is missing.*deleted/) });
    });

    it('a deleted tail stays visible after later appends', async () => {
      await tamper('DELETE FROM entries WHERE seq >= 9');
      const next = await store.append({ key: 'later', kind: 'system.started', actor: 'system', details: {} });
      expect(next.seq).toBe(11);
      expect(await broken()).toEqual({ seq: 9, reason: expect.stringMatching(/entries 9 to 10 are missing/) });
    });

    it('a replaced last entry, re-hashed consistently (caught by the head)', async () => {
      await tamper('DELETE FROM entries WHERE seq = 10');
      await insertRow(forged(10, entries[8].hash));
      expect(await broken()).toEqual({ seq: 10, reason: expect.stringMatching(/entry 10 was replaced/) });
    });

    it('an entry added after the head outside the store', async () => {
      await insertRow(forged(11, entries[9].hash));
      expect(await broken()).toEqual({ seq: 11, reason: expect.stringMatching(/added outside the audit store/) });
      await expect(store.append({ key: 'x', kind: 'system.started', actor: 'system', details: {} })).rejects.toThrow(/inconsistent/);
    });

    it('an inserted entry with a correctly forged hash', async () => {
      await openHole(5);
      await insertRow(forged(5, entries[3].hash));
      expect(await broken()).toEqual({ seq: 5, reason: expect.stringMatching(/entry 5 was inserted/) });
    });

    it('an inserted entry with a made-up hash', async () => {
      await openHole(5);
      await insertRow({ ...forged(5, entries[3].hash), hash: 'f'.repeat(64) });
      expect(await broken()).toEqual({ seq: 5, reason: expect.stringMatching(/entry 5 was inserted/) });
    });

    it('a replaced entry in the middle, re-hashed consistently', async () => {
      await tamper('DELETE FROM entries WHERE seq = 6');
      await insertRow(forged(6, entries[4].hash));
      expect(await broken()).toEqual({ seq: 6, reason: expect.stringMatching(/entry 6 was replaced/) });
    });
  });

  describe('canonical encoding', () => {
    it('does not depend on key order', async () => {
      const a = { z: 1, a: { y: [1, { d: 2, c: 3 }], b: 'x' }, m: null };
      const b = { m: null, a: { b: 'x', y: [1, { c: 3, d: 2 }] }, z: 1 };
      expect(canonicalJson(a)).toBe(canonicalJson(b));
      expect(canonicalJson(a)).toBe('{"a":{"b":"x","y":[1,{"c":3,"d":2}]},"m":null,"z":1}');
      const e1 = await store.append({ key: 'one', kind: 'policy.decided', actor: 'system', details: a, at: '2026-01-01T00:00:00.000Z' });
      const fields = { ...e1, details: b };
      expect(hashEntry(fields)).toBe(e1.hash);
    });

    it('writes strings and numbers as JSON does', async () => {
      expect(canonicalJson({ s: 'é"\n\u2028', n: [0, -1.5, 1e21, 2 ** 53] })).toBe(
        JSON.stringify({ n: [0, -1.5, 1e21, 2 ** 53], s: 'é"\n\u2028' }),
      );
    });

    it('refuses what JSON cannot carry, saying where', async () => {
      expect(() => canonicalJson({ a: undefined })).toThrow(/\$\.a is undefined/);
      expect(() => canonicalJson({ a: [1, () => 1] })).toThrow(/\$\.a\[1\] is a function/);
      expect(() => canonicalJson({ n: NaN })).toThrow(/\$\.n is NaN/);
      expect(() => canonicalJson({ n: Infinity })).toThrow(/Infinity/);
      expect(() => canonicalJson({ n: 1n })).toThrow(/bigint/);
      expect(() => canonicalJson({ d: new Date() })).toThrow(/\$\.d is a Date/);
      expect(() => canonicalJson({ m: new Map() })).toThrow(/Map/);
      const cycle: Record<string, unknown> = {};
      cycle.self = cycle;
      expect(() => canonicalJson(cycle)).toThrow(/cycle/);
      const shared = { x: 1 };
      expect(canonicalJson({ a: shared, b: shared })).toBe('{"a":{"x":1},"b":{"x":1}}');
    });
  });

  describe('export', () => {
    it('writes canonical JSON Lines, oldest first, that verify on their own', async () => {
      const entries = await seed(7);
      const lines: string[] = [];
      expect(await store.exportJsonl((line) => lines.push(line))).toBe(7);
      let prev = GENESIS_HASH;
      for (const [i, line] of lines.entries()) {
        expect(line).not.toContain('\n');
        const parsed = AuditEntrySchema.parse(JSON.parse(line));
        expect(canonicalJson(parsed)).toBe(line);
        expect(parsed).toEqual(entries[i]);
        expect(parsed.prev_hash).toBe(prev);
        expect(hashEntry(parsed)).toBe(parsed.hash);
        prev = parsed.hash;
      }
      const after: string[] = [];
      await store.exportJsonl((line) => after.push(line), { after_seq: 5 });
      expect(after).toEqual(lines.slice(5));
    });
  });

  describe('appends from several writers', () => {
    it('two store instances on the same file interleave into one contiguous chain', async () => {
      const other = await place.openAudit(options());
      try {
        // Not awaited one by one: both connections' appends are in flight at once.
        const appends = [];
        for (let i = 0; i < 20; i++) {
          appends.push((i % 2 ? store : other).append({ key: `k${i}`, kind: 'execution.started', actor: 'system', details: { i } }));
          appends.push((i % 3 ? other : store).append({ key: `k${i}`, kind: 'execution.started', actor: 'system', details: { i } }));
        }
        await Promise.all(appends);
      } finally {
        await other.close();
      }
      expect((await store.list({ limit: 1000 })).map((e) => e.seq)).toEqual([...Array(20).keys()].map((i) => 20 - i));
      expect(await store.verify()).toMatchObject({ ok: true, entries: 20, breaks: [] });
    });

    it('a check and the entry that records it are one step: two writers racing for the last room, one gets it', async () => {
      const other = await place.openAudit(options());
      // Room for one reservation of 60 in a limit of 100: each writer reads what is reserved, waits a moment (a
      // slow check), then decides. Were the read outside the append, both would see 0 and both would reserve.
      const reserve = (on: AuditStore, key: string) =>
        on.appendUnless(
          { key, kind: 'model.reserve', actor: 'system', agent_id: 'agent-1', details: { estimated_tokens: 60 } },
          async (read) => {
            const reserved = (await read({ kind: 'model.reserve', agent_id: 'agent-1' })).reduce(
              (sum, e) => sum + (e.details.estimated_tokens as number),
              0,
            );
            await new Promise((r) => setTimeout(r, 50));
            return reserved + 60 > 100 ? `only ${100 - reserved} left` : null;
          },
        );
      try {
        const outcomes = await Promise.all([reserve(store, 'call-a'), reserve(other, 'call-b')]);
        expect(outcomes.filter((o) => 'entry' in o)).toHaveLength(1);
        expect(outcomes.filter((o) => 'refused' in o)).toEqual([{ refused: 'only 40 left' }]);
        // A retry of the call that got the room gets its entry again, without asking.
        const winner = outcomes.find((o) => 'entry' in o) as { entry: AuditEntry };
        expect(await reserve(other, winner.entry.key)).toEqual(winner);
      } finally {
        await other.close();
      }
      expect(await store.list({ kind: 'model.reserve' })).toHaveLength(1);
      expect(await store.verify()).toMatchObject({ ok: true, entries: 1 });
    });

    it('four processes appending at once, with retried keys, make one chain: no gap, no fork, no duplicate', async () => {
      const N = 60;
      const PROCESSES = ['p1', 'p2', 'p3', 'p4'];
      // Every process also writes a shared set of keys, like a retry landing on another worker.
      const script = (name: string) => `
      ${place.auditInProcess(MASTER_KEY)}
      for (let i = 0; i < ${N}; i++) {
        await store.append({ key: '${name}:' + i, kind: 'execution.completed', actor: '${name}', details: { i } });
        if (i % 10 === 0) await store.append({ key: 'shared:' + i, kind: 'execution.failed', actor: '${name}', details: { i } });
      }
      await store.close();`;
      const run = (name: string) =>
        promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script(name)], { cwd: PROJECT_ROOT });
      await Promise.all(PROCESSES.map(run));
      const all = await store.list({ limit: 1000 });
      const shared = N / 10;
      expect(all).toHaveLength(PROCESSES.length * N + shared);
      for (let i = 1; i < all.length; i++) expect(all[i - 1]!.prev_hash).toBe(all[i]!.hash);
      expect(all.map((e) => e.seq)).toEqual([...Array(all.length).keys()].map((i) => all.length - i));
      expect(new Set(all.map((e) => e.key)).size).toBe(all.length);
      expect(await store.verify()).toMatchObject({ ok: true, entries: all.length, breaks: [] });
    });
  });

  describe.runIf(backend === 'SQLite')('warden audit --db: the log read straight from its file', () => {
    const file = () => join(place.dataDir, 'audit.db');
    const cli = (...args: string[]) =>
      spawnSync(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'bin/warden.ts'), 'audit', ...args], {
        cwd: PROJECT_ROOT,
        encoding: 'utf8',
        env: { ...process.env, WARDEN_MASTER_KEY: MASTER_KEY },
      });

    it('verifies, exports and tails', async () => {
      const entries = await seed(5);
      const verified = cli('verify', '--db', file());
      expect(verified.status).toBe(0);
      expect(verified.stdout).toContain(`intact: 5 entries, head #5 ${entries[4].hash}`);

      const exported = cli('export', '--db', file());
      expect(exported.status).toBe(0);
      expect(
        exported.stdout
          .trimEnd()
          .split('\n')
          .map((l) => JSON.parse(l)),
      ).toEqual(entries);

      const tail = cli('tail', '--db', file(), '-n', '2');
      expect(tail.status).toBe(0);
      const lines = tail.stdout.trimEnd().split('\n');
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatch(/^#4 \S+ approval\.granted actor=system agent=agt-1 action=act-1 \{"i":4,/);
      expect(lines[1]).toMatch(/^#5 /);

      await tamper('DELETE FROM entries WHERE seq = 3');
      const broken = cli('verify', '--db', file());
      expect(broken.status).toBe(1);
      expect(broken.stdout).toMatch(/BROKEN at entry 3: entry 3 is missing/);
    });

    it('says when there is no log, and refuses what it does not know', async () => {
      const missing = cli('verify', '--db', join(place.dataDir, 'nowhere', 'audit.db'));
      expect(missing.status).toBe(2);
      expect(missing.stderr).toContain(`no audit log at ${join(place.dataDir, 'nowhere', 'audit.db')}`);
      expect(cli('frobnicate').status).toBe(2);
      expect(cli('tail', '--db', file(), '-n', 'many').status).toBe(2);
    });
  });

  describe('redaction', () => {
    it('scrubs credentials out of details before they are hashed and stored', async () => {
      const store = AuditStore.open(':memory:', options());
      const entry = await store.append({
        key: 'redact-1',
        kind: 'execution.failed',
        actor: 'system',
        details: { error: 'cannot reach postgres://app:hunter2@db/x', nested: ['Bearer abcdef0123456789abcdef'] },
      });
      expect(entry.details).toEqual({ error: 'cannot reach postgres://app:[REDACTED:password]@db/x', nested: ['Bearer [REDACTED:token]'] });
      expect((await store.list())[0]!.details).toEqual(entry.details);
      expect((await store.verify()).ok).toBe(true);
    });
  });

  describe('actors', () => {
    it('marks an actor that is neither a system actor nor a known key id as unverified, and verify lists it', async () => {
      const known = await store.append({ key: 'a1', kind: 'approval.granted', actor: 'key:ops', details: {} });
      const system = await store.append({ key: 'a2', kind: 'agent.status_changed', actor: 'system (idle timeout)', details: {} });
      // What anyone reaching Temporal's port can make a workflow record: an id no key store issued,
      // a lookalike of a system actor, or no actor at all.
      const forgedKey = await store.append({ key: 'a3', kind: 'approval.granted', actor: 'key_0123456789ab', details: {} });
      const lookalike = await store.append({ key: 'a4', kind: 'approval.granted', actor: 'system (trust me)', details: {} });
      const nobody = await store.append({ key: 'a5', kind: 'approval.granted', actor: null, details: {} });
      expect([known, system, forgedKey, lookalike, nobody].map((e) => e.actor_verified)).toEqual([true, true, false, false, false]);
      expect((await store.list({ limit: 5 })).map((e) => e.actor_verified)).toEqual([false, false, false, true, true]);
      expect(await store.verify()).toMatchObject({ ok: true, unverified_actors: { count: 3, seqs: [3, 4, 5] } });
    });

    it('hashes the mark: flipping it in the file breaks the chain', async () => {
      await store.append({ key: 'a1', kind: 'approval.granted', actor: 'key_0123456789ab', details: {} });
      await tamper('UPDATE entries SET actor_verified = 1 WHERE seq = 1');
      expect((await store.verify()).breaks).toEqual([{ seq: 1, reason: expect.stringMatching(/entry 1 was changed/) }]);
    });

    it('knows every system actor the workflows record', async () => {
      const { readFileSync, readdirSync } = await import('node:fs');
      const sources = readdirSync(join(PROJECT_ROOT, 'workflows')).map((f) => readFileSync(join(PROJECT_ROOT, 'workflows', f), 'utf8'));
      const literals = new Set(sources.flatMap((s) => [...s.matchAll(/'((?:system|reaper)(?: \([^')]*\))?)'/g)].map((m) => m[1]!)));
      expect(literals.size).toBeGreaterThan(2);
      for (const actor of literals) expect(SYSTEM_ACTORS, actor).toContain(actor);
    });
  });

  describe('ill-formed strings', () => {
    it('an entry with a lone surrogate in any string column reads back as hashed, and verifies', async () => {
      const entry = await store.append({
        key: 'k-\ud800',
        kind: 'agent.created',
        actor: 'key:ops\udc00',
        action_id: 'act-\ud83d',
        agent_id: 'agt-\udfff',
        details: { note: 'x\ud800y' },
      });
      expect(entry).toMatchObject({
        key: 'k-\ufffd',
        actor: 'key:ops\ufffd',
        action_id: 'act-\ufffd',
        agent_id: 'agt-\ufffd',
        details: { note: 'x\ud800y' },
      });
      expect(await store.list()).toEqual([entry]);
      expect(await store.verify()).toMatchObject({ ok: true, breaks: [] });
      // The same key, retried, finds the entry.
      expect(await store.append({ key: 'k-\ud800', kind: 'agent.created', actor: 'system', details: {} })).toEqual(entry);
    });

    it('an entry with a NUL in any string column is stored with U+FFFD, reads back as hashed, and verifies', async () => {
      const entry = await store.append({
        key: 'k-\0',
        kind: 'agent.created',
        actor: 'key:ops\0',
        action_id: 'act-\0',
        agent_id: 'agt-\0',
        details: { note: 'x\0y' },
      });
      // Details are JSON, whose escape carries the NUL exactly.
      expect(entry).toMatchObject({
        key: 'k-\ufffd',
        actor: 'key:ops\ufffd',
        action_id: 'act-\ufffd',
        agent_id: 'agt-\ufffd',
        details: { note: 'x\0y' },
      });
      expect(await store.list()).toEqual([entry]);
      expect(await store.verify()).toMatchObject({ ok: true, breaks: [] });
      expect(await store.append({ key: 'k-\0', kind: 'agent.created', actor: 'system', details: {} })).toEqual(entry);
    });

    it.runIf(backend === 'SQLite')(
      'an entry an older Warden wrote with a NUL in its columns (hashed as it was) still verifies: stored strings are hashed as they are',
      async () => {
        await store.close();
        // An older audit.db, before anchors: its first opening anchors the head as it stands.
        const older = join(place.dataDir, 'older.db');
        const db = new Database(older);
        db.exec(`CREATE TABLE entries (seq INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, at TEXT NOT NULL, kind TEXT NOT NULL, actor TEXT,
      action_id TEXT, agent_id TEXT, details TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
      CREATE TABLE head (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL);`);
        const fields = {
          seq: 1,
          key: 'k-\0',
          at: '2026-01-01T00:00:00.000Z',
          kind: 'agent.created' as const,
          actor: 'system\0',
          actor_verified: null,
          action_id: 'act-\0',
          agent_id: 'agt-\0',
          details: { note: 'x\0y' },
          prev_hash: GENESIS_HASH,
        };
        const written = { ...fields, hash: hashEntry(fields) };
        db.prepare('INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').run(
          written.seq,
          written.key,
          written.at,
          written.kind,
          written.actor,
          written.action_id,
          written.agent_id,
          canonicalJson(written.details),
          written.prev_hash,
          written.hash,
        );
        db.prepare('INSERT INTO head VALUES (1, 1, ?)').run(written.hash);
        db.close();
        store = AuditStore.open(older, options());
        expect((await store.list())[0]).toEqual(written);
        await store.append({ key: 'new', kind: 'system.started', actor: 'system', details: {} });
        expect(await store.verify()).toMatchObject({ ok: true, entries: 2, breaks: [] });
      },
    );
  });

  describe('verify reports every break', () => {
    it('two separate tamperings: two breaks, each with its seq and reason, as the CLI prints them', async () => {
      await seed(10);
      await tamper("UPDATE entries SET actor = 'key:admin' WHERE seq = 3; DELETE FROM entries WHERE seq = 7");
      const result = await store.verify();
      expect(result).toMatchObject({ ok: false, entries: 9 });
      expect(result.breaks).toEqual([
        { seq: 3, reason: expect.stringMatching(/entry 3 was changed/) },
        { seq: 7, reason: expect.stringMatching(/entry 7 is missing/) },
      ]);
      expect(result.first_broken).toEqual(result.breaks[0]);
    });

    it('a deletion hidden by renumbering is one break, and a change after it is another', async () => {
      await seed(10);
      await tamper(
        'DELETE FROM entries WHERE seq = 4; UPDATE entries SET seq = -(seq - 1) WHERE seq > 4; UPDATE entries SET seq = -seq WHERE seq < 0',
      );
      await tamper(`UPDATE entries SET details = '{"i":0}' WHERE seq = 7`);
      expect((await store.verify()).breaks).toEqual([
        { seq: 4, reason: expect.stringMatching(/entry 4 was deleted and the later entries renumbered/) },
        { seq: 7, reason: expect.stringMatching(/entry 7 was changed/) },
      ]);
    });
  });

  describe('the anchor', () => {
    /** What someone with write access to audit.db can do: every row rewritten into a fresh, consistent chain, head included. */
    async function rechain(change: (e: AuditEntry) => AuditEntry) {
      let prev = GENESIS_HASH;
      const rows = (await store.list({ limit: 1000 })).reverse().map((e) => {
        const { hash: _old, ...fields } = { ...change(e), prev_hash: prev };
        const hash = hashEntry(fields);
        prev = hash;
        return { ...fields, hash };
      });
      await tamper('DELETE FROM entries');
      for (const row of rows) {
        await tamper(
          'INSERT INTO entries (seq, key, at, kind, actor, actor_verified, action_id, agent_id, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
          row.seq,
          row.key,
          row.at,
          row.kind,
          row.actor,
          row.actor_verified === null ? null : Number(row.actor_verified),
          row.action_id,
          row.agent_id,
          canonicalJson(row.details),
          row.prev_hash,
          row.hash,
        );
      }
      await tamper('UPDATE head SET seq = ?, hash = ?', rows.at(-1)!.seq, prev);
    }

    it('a log rewritten and re-chained consistently fails verification, naming the anchor; appends refuse', async () => {
      await seed(6);
      await rechain((e) => (e.seq === 2 ? { ...e, kind: 'approval.granted', actor: 'key:ops', details: { approved: true } } : e));
      const result = await store.verify();
      expect(result.ok).toBe(false);
      expect(result.breaks).toEqual([
        { seq: 6, reason: expect.stringMatching(/^the anchor does not match the head \(entry 6\).*rewritten or re-chained/) },
      ]);
      await expect(store.append({ key: 'after', kind: 'system.started', actor: 'system', details: {} })).rejects.toThrow(
        AuditIntegrityError,
      );
      await expect(store.append({ key: 'after', kind: 'system.started', actor: 'system', details: {} })).rejects.toThrow(
        /anchor does not match/,
      );
    });

    it('a removed anchor is a break, and is not re-made on reopening', async () => {
      await seed(3);
      await tamper('UPDATE head SET mac = NULL');
      await store.close();
      store = await place.openAudit(options());
      expect((await store.verify()).breaks).toEqual([{ seq: 3, reason: expect.stringMatching(/the head \(entry 3\) has no anchor/) }]);
    });

    it('under another master key it cannot be checked; without one, verify says so', async () => {
      await seed(2);
      await store.close();
      const otherKey = Buffer.from('another-TEST-ONLY-master-key-002').toString('base64');
      store = await place.openAudit({ readonly: true, keyring: Keyring.load({ masterKey: otherKey, dataDir: tmpdir() }) });
      expect((await store.verify()).breaks).toEqual([
        { seq: 2, reason: expect.stringMatching(/the anchor cannot be checked: no master key with id/) },
      ]);
      await store.close();
      store = await place.openAudit({ readonly: true });
      expect((await store.verify()).breaks).toEqual([
        { seq: 2, reason: expect.stringMatching(/the anchor was not checked: no master key here/) },
      ]);
    });

    it.runIf(backend === 'SQLite')('a log from before heads, read without changing it, says its head is missing', async () => {
      const older = join(place.dataDir, 'headless.db');
      const db = new Database(older);
      db.exec(`CREATE TABLE entries (seq INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, at TEXT NOT NULL, kind TEXT NOT NULL, actor TEXT,
      action_id TEXT, agent_id TEXT, details TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)`);
      db.close();
      const readOnly = AuditStore.open(older, { readonly: true, keyring: keyring() });
      try {
        expect(await readOnly.head()).toEqual({ seq: 0, hash: GENESIS_HASH });
        expect((await readOnly.verify()).breaks).toEqual([{ seq: 1, reason: expect.stringMatching(/the head record is missing/) }]);
      } finally {
        await readOnly.close();
      }
    });

    it.runIf(backend === 'SQLite')(
      'a log from before anchors is anchored as it stands when first opened, and says since when',
      async () => {
        await store.close();
        // An older audit.db: no actor_verified column, a head without an anchor.
        const legacy = join(place.dataDir, 'legacy.db');
        const db = new Database(legacy);
        db.exec(`CREATE TABLE entries (seq INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, at TEXT NOT NULL, kind TEXT NOT NULL, actor TEXT,
      action_id TEXT, agent_id TEXT, details TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
      CREATE TABLE head (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL);`);
        const old = forged(1, GENESIS_HASH);
        db.prepare('INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').run(
          old.seq,
          old.key,
          old.at,
          old.kind,
          old.actor,
          old.action_id,
          old.agent_id,
          canonicalJson(old.details),
          old.prev_hash,
          old.hash,
        );
        db.prepare('INSERT INTO head VALUES (1, 1, ?)').run(old.hash);
        db.close();
        const readOnly = AuditStore.open(legacy, { readonly: true, keyring: keyring() });
        expect((await readOnly.list())[0]).toMatchObject({ seq: 1, actor_verified: null });
        expect((await readOnly.verify()).breaks).toEqual([{ seq: 1, reason: expect.stringMatching(/has no anchor/) }]);
        await readOnly.close();
        store = AuditStore.open(legacy, options());
        await store.append({ key: 'new', kind: 'system.started', actor: 'system', details: {} });
        expect(await store.verify()).toMatchObject({ ok: true, entries: 2, anchor: { since_seq: 1 } });
      },
    );
  });
});
