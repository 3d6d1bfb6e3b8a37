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
afterAll(async () => rmSync(dir, { recursive: true, force: true }));
const keys = KeyStore.open(join(dir, 'warden.db'));
const identity = async (id: string) => {
  const key = (await keys.get(id))!;
  return { key_id: id, name: key.name, role: key.role, person: await keys.countsAs(id) };
};

it('a key an admin made counts as that admin, through any chain of keys it made, until someone else confirms it', async () => {
  const root = await keys.create('root', 'admin', null);
  const puppet = await keys.create('puppet admin', 'admin', root.id, { person: 'paula' });
  const deep = await keys.create('deep', 'approver', puppet.id, { person: 'dan' });
  expect([root.counts_as, puppet.counts_as, deep.counts_as]).toEqual(['root', 'root', 'root']);
  expect(await keys.confirm(deep.id, await identity(puppet.id))).toMatch(/made by root, whom your key counts as/);
  expect(await keys.confirm(deep.id, await identity(root.id))).toMatch(/made by root/);
  expect(await keys.confirm(deep.id, await identity(deep.id))).toMatch(/must confirm it/);

  const other = await keys.create('olga', 'admin', null);
  expect(await keys.confirm(deep.id, await identity(other.id))).toBeNull();
  expect(await keys.get(deep.id)).toMatchObject({ person: 'dan', counts_as: 'dan', confirmed_by: other.id });
  expect(await keys.confirm(deep.id, await identity(other.id))).toMatch(/already its holder's own/);
  // The puppet admin is still root: what it makes counts as root too.
  expect((await keys.create('later', 'approver', puppet.id)).counts_as).toBe('root');
  await keys.revoke(puppet.id);
  expect(await keys.confirm(puppet.id, await identity(other.id))).toMatch(/is revoked/);
  expect(await keys.authenticate(deep.key)).toMatchObject({ key_id: deep.id, person: 'dan' });
});

it('the host confirms a key with scripts/confirm-key.ts, on the audit log; a bad id is a usage error', async () => {
  const root = await keys.create('host root', 'admin', null);
  const made = await keys.create('frank', 'approver', root.id);
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
  expect(await keys.get(made.id)).toMatchObject({ counts_as: 'frank', confirmed_by: 'host' });
  const audit = AuditStore.open(join(dir, 'audit.db'), { keyring: Keyring.load({ dataDir: dir }), isKnownKeyId: (id) => keys.has(id) });
  expect(await audit.list({ kind: 'key.confirmed' })).toMatchObject([{ actor: 'host', details: { id: made.id, person: 'frank' } }]);
  expect((await audit.verify()).ok).toBe(true);
  await expect(run(made.id)).rejects.toMatchObject({
    code: 1,
    stderr: expect.stringMatching(/already its holder's own \(confirmed by host\)/),
  });
}, 60_000);
