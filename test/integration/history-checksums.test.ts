/**
 * The replay test protects running workflows only while the histories they were started under stay
 * in test/histories/. test/histories/CHECKSUMS pins each one (sha256sum format, sorted by name): a
 * recorded history is never edited, re-recorded or removed; new behaviour gets a new history beside
 * the old ones, and the workflow change that needs it goes behind patched().
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { historyFiles } from '../support/histories.js';

const dir = 'test/histories';
const advice =
  'recorded histories stay as they are: add new histories beside the old (a new file name in the folder of its workflow type, listed in test/histories/CHECKSUMS), and put the workflow change behind patched()';

const listed = readFileSync(`${dir}/CHECKSUMS`, 'utf8')
  .trim()
  .split('\n')
  .map((line) => {
    const match = /^([0-9a-f]{64}) {2}([a-z-]+\/\S+\.json)$/.exec(line);
    if (!match) throw new Error(`test/histories/CHECKSUMS: "${line}" is not "<sha256>  <workflow type>/<name>.json"`);
    return { sha256: match[1]!, file: match[2]! };
  });
const onDisk = historyFiles();
const sha256 = (file: string) =>
  createHash('sha256')
    .update(readFileSync(`${dir}/${file}`))
    .digest('hex');

it('lists its histories once each, sorted by name', () => {
  const names = listed.map((l) => l.file);
  expect(names).toEqual([...new Set(names)].sort());
});

it('has every listed history, unchanged', () => {
  const missing = listed.filter((l) => !onDisk.includes(l.file)).map((l) => l.file);
  expect(missing, `removed from test/histories: ${advice}`).toEqual([]);
  const changed = listed.filter((l) => onDisk.includes(l.file) && sha256(l.file) !== l.sha256).map((l) => l.file);
  expect(changed, `changed since it was listed: ${advice}`).toEqual([]);
});

it('lists every history in test/histories', () => {
  const unlisted = onDisk.filter((f) => !listed.some((l) => l.file === f));
  expect(unlisted, `not in test/histories/CHECKSUMS: ${advice}; then add "sha256sum <file>" to CHECKSUMS`).toEqual([]);
});
