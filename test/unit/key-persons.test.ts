/**
 * Persons behind keys (stores/key-store.ts): who a key counts as for approvals, who may confirm it,
 * and the host's confirmation script run as an operator would.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { AuditStore } from '../../stores/audit-store.js';
import { KeyStore } from '../../stores/key-store.js';
import { Keyring } from '../../domain/keyring.js';

const dir = mkdtempSync(join(tmpdir(), 'warden-persons-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const keys = KeyStore.open(join(dir, 'warden.db'));
const identity = (id: string) => ({ key_id: id, name: keys.get(id)!.name, role: keys.get(id)!.role, person: keys.countsAs(id) });

it('a key an admin made counts as that admin, through any chain of keys it made, until someone else confirms it', () => {
  const root = keys.create('root', 'admin', null);
  const puppet = keys.create('puppet admin', 'admin', root.id, { person: 'paula' });
  const deep = keys.create('deep', 'approver', puppet.id, { person: 'dan' });
  expect([root.counts_as, puppet.counts_as, deep.counts_as]).toEqual(['root', 'root', 'root']);
  expect(keys.confirm(deep.id, identity(puppet.id))).toMatch(/made by root, whom your key counts as/);
  expect(keys.confirm(deep.id, identity(root.id))).toMatch(/made by root/);
  expect(keys.confirm(deep.id, identity(deep.id))).toMatch(/must confirm it/);

  const other = keys.create('olga', 'admin', null);
  expect(keys.confirm(deep.id, identity(other.id))).toBeNull();
  expect(keys.get(deep.id)).toMatchObject({ person: 'dan', counts_as: 'dan', confirmed_by: other.id });
  expect(keys.confirm(deep.id, identity(other.id))).toMatch(/already its holder's own/);
  // The puppet admin is still root: what it makes counts as root too.
  expect(keys.create('later', 'approver', puppet.id).counts_as).toBe('root');
  keys.revoke(puppet.id);
  expect(keys.confirm(puppet.id, identity(other.id))).toMatch(/is revoked/);
  expect(keys.authenticate(deep.key)).toMatchObject({ key_id: deep.id, person: 'dan' });
});

it('the host confirms a key with scripts/confirm-key.ts, on the audit log; a bad id is a usage error', async () => {
  const root = keys.create('host root', 'admin', null);
  const made = keys.create('frank', 'approver', root.id);
  const run = (...args: string[]) =>
    promisify(execFile)('npx', ['tsx', 'scripts/confirm-key.ts', ...args], {
      env: { ...process.env, WARDEN_DATA_DIR: dir, WARDEN_MASTER_KEY: '' },
    });
  await expect(run('nonsense')).rejects.toMatchObject({
    code: 2,
    stderr: expect.stringMatching(/usage: npx tsx scripts\/confirm-key.ts <key id>/),
  });
  const { stdout } = await run(made.id);
  expect(stdout).toBe(`${made.id} now counts as frank\n`);
  expect(keys.get(made.id)).toMatchObject({ counts_as: 'frank', confirmed_by: 'host' });
  const audit = AuditStore.open(join(dir, 'audit.db'), { keyring: Keyring.load({ dataDir: dir }), isKnownKeyId: (id) => keys.has(id) });
  expect(audit.list({ kind: 'key.confirmed' })).toMatchObject([{ actor: 'host', details: { id: made.id, person: 'frank' } }]);
  expect(audit.verify().ok).toBe(true);
  await expect(run(made.id)).rejects.toMatchObject({
    code: 1,
    stderr: expect.stringMatching(/already its holder's own \(confirmed by host\)/),
  });
}, 60_000);
