/**
 * Confirms an API key as its holder's own, on the host: `npx tsx scripts/confirm-key.ts <key id>`.
 * Where there is no second admin yet, the host is the other person: whoever can read the data
 * dir (and so the master key) is trusted with this anyway. The confirmation is on the audit log.
 */
import { openStores } from '../stores/open-stores.js';
import { loadConfig } from '../domain/config.js';
import { Keyring } from '../domain/keyring.js';

const id = process.argv[2];
if (!id || !/^key_[0-9a-f]{12}$/.test(id)) {
  process.stderr.write('usage: npx tsx scripts/confirm-key.ts <key id>   (key_ followed by 12 hex digits; GET /api/keys lists them)\n');
  process.exit(2);
}
const config = loadConfig();
const keyring = Keyring.load({ dataDir: config.dataDir, masterKey: config.masterKey, previousMasterKeys: config.masterKeyPrevious });
const stores = await openStores(config, keyring, { keys: true, audit: true });
const keys = stores.keys!;
const problem = await keys.confirm(id, 'host');
if (problem) {
  process.stderr.write(`${problem}\n`);
  await stores.close();
  process.exit(1);
}
const confirmed = (await keys.get(id))!;
await stores.audit!.append({ key: `key:${id}:confirmed`, kind: 'key.confirmed', actor: 'host', details: { id, person: confirmed.person } });
process.stdout.write(`${id} now counts as ${confirmed.counts_as}\n`);
await stores.close();
