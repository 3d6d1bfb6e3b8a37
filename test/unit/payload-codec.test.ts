/**
 * The payload codec alone: what an encrypted payload looks like, that every altered byte fails
 * authentication, that plaintext is refused unless migration allows it, that rotation keeps old
 * payloads readable, and that failure messages reach the codec as a payload.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ApplicationFailure, defaultPayloadConverter, type FailureConverter, type Payload } from '@temporalio/common';
import { FAILURE_CONVERTER_PATH } from '../../domain/data-converter.js';
import { Keyring } from '../../domain/keyring.js';
import { ENCRYPTED_ENCODING, KEY_ID_METADATA, PayloadCodecError, PayloadEncryptionCodec } from '../../domain/payload-codec.js';

const SECRET = 'rm -rf / # canary-7f3a91';
const masterKey = () => randomBytes(32).toString('base64');
const envKeyring = (key = masterKey(), previous?: string) =>
  Keyring.load({ masterKey: key, previousMasterKeys: previous, dataDir: tmpdir() });
const plain = (value: unknown) => defaultPayloadConverter.toPayload(value)!;
const text = (bytes: Uint8Array | null | undefined) => Buffer.from(bytes ?? []).toString('utf8');
const value = (payload: Payload) => defaultPayloadConverter.fromPayload(payload);

describe('PayloadEncryptionCodec', () => {
  it('encrypts the whole payload, names its key, and decrypts it back', async () => {
    const keyring = envKeyring();
    const codec = new PayloadEncryptionCodec(keyring);
    const [encrypted] = await codec.encode([plain({ command: SECRET })]);
    expect(text(encrypted!.metadata!.encoding)).toBe(ENCRYPTED_ENCODING);
    expect(text(encrypted!.metadata![KEY_ID_METADATA])).toBe(keyring.currentId);
    // Neither the value nor its original encoding is readable.
    expect(Buffer.from(encrypted!.data!).includes(SECRET)).toBe(false);
    expect(Object.values(encrypted!.metadata!).map(text)).not.toContain('json/plain');
    const [decoded] = await codec.decode([encrypted!]);
    expect(text(decoded!.metadata!.encoding)).toBe('json/plain');
    expect(value(decoded!)).toEqual({ command: SECRET });
  });

  it('uses a fresh IV each time: the same value never encrypts to the same bytes', async () => {
    const codec = new PayloadEncryptionCodec(envKeyring());
    const [a, b] = await codec.encode([plain(SECRET), plain(SECRET)]);
    expect(Buffer.from(a!.data!).equals(Buffer.from(b!.data!))).toBe(false);
  });

  it('fails authentication when any byte of the data is flipped: IV, ciphertext or tag', async () => {
    const codec = new PayloadEncryptionCodec(envKeyring());
    const [encrypted] = await codec.encode([plain({ command: SECRET })]);
    const data = Buffer.from(encrypted!.data!);
    for (const at of [0, 11, 12, data.length - 17, data.length - 16, data.length - 1]) {
      const tampered = Buffer.from(data);
      tampered[at]! ^= 0x01;
      await expect(codec.decode([{ ...encrypted!, data: tampered }]), `byte ${at}`).rejects.toThrow(
        /encrypted under key [0-9a-f]{16} failed authentication: it was altered or damaged/,
      );
    }
  });

  it('refuses a payload relabelled with another key id, truncated, or without a key id', async () => {
    const keyring = envKeyring(masterKey(), masterKey());
    const codec = new PayloadEncryptionCodec(keyring);
    const [encrypted] = await codec.encode([plain(SECRET)]);
    const other = keyring.ids().find((id) => id !== keyring.currentId)!;
    const relabelled = { ...encrypted!, metadata: { ...encrypted!.metadata, [KEY_ID_METADATA]: Buffer.from(other) } };
    await expect(codec.decode([relabelled])).rejects.toThrow(/failed authentication/);
    await expect(codec.decode([{ ...encrypted!, data: encrypted!.data!.subarray(0, 20) }])).rejects.toThrow(/too short \(20 bytes\)/);
    const { [KEY_ID_METADATA]: _, ...noKeyId } = encrypted!.metadata!;
    await expect(codec.decode([{ ...encrypted!, metadata: noKeyId }])).rejects.toThrow(/no encryption-key-id in its metadata/);
  });

  it('fails closed on plaintext, and lets it through only when migration allows it', async () => {
    const keyring = envKeyring();
    const refusing = new PayloadEncryptionCodec(keyring);
    const error = await refusing.decode([plain({ command: SECRET })]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PayloadCodecError);
    expect((error as Error).message).toMatch(
      /refused a payload that is not encrypted \(encoding "json\/plain"\).*WARDEN_PAYLOAD_ALLOW_PLAINTEXT=1/,
    );
    await expect(refusing.decode([{ data: Buffer.from('x') }])).rejects.toThrow(/encoding missing/);

    const migrating = new PayloadEncryptionCodec(keyring, { allowPlaintext: true });
    const [passed] = await migrating.decode([plain({ command: SECRET })]);
    expect(value(passed!)).toEqual({ command: SECRET });
    // Migration only concerns reading: what it writes is encrypted.
    const [written] = await migrating.encode([plain(SECRET)]);
    expect(text(written!.metadata!.encoding)).toBe(ENCRYPTED_ENCODING);
  });

  it('refuses a payload under a key this process does not have, saying so', async () => {
    const [encrypted] = await new PayloadEncryptionCodec(envKeyring()).encode([plain(SECRET)]);
    await expect(new PayloadEncryptionCodec(envKeyring()).decode([encrypted!])).rejects.toThrow(
      /cannot decrypt a payload: no master key with id [0-9a-f]{16}/,
    );
  });

  it('rotation with WARDEN_MASTER_KEY: the previous key still decrypts, new payloads use the new one', async () => {
    const oldKey = masterKey();
    const before = new PayloadEncryptionCodec(envKeyring(oldKey));
    const [old] = await before.encode([plain('written before the rotation')]);
    const rotated = envKeyring(masterKey(), oldKey);
    const after = new PayloadEncryptionCodec(rotated);
    const [fresh] = await after.encode([plain('written after')]);
    expect(text(fresh!.metadata![KEY_ID_METADATA])).toBe(rotated.currentId);
    expect(text(fresh!.metadata![KEY_ID_METADATA])).not.toBe(text(old!.metadata![KEY_ID_METADATA]));
    expect((await after.decode([old!, fresh!])).map(value)).toEqual(['written before the rotation', 'written after']);
  });

  it('rotation of the key file: another process sharing the file decrypts both old and new payloads', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'warden-codec-'));
    const api = Keyring.load({ dataDir });
    const worker = new PayloadEncryptionCodec(Keyring.load({ dataDir }));
    const [old] = await new PayloadEncryptionCodec(api).encode([plain('old')]);
    api.rotate();
    const [fresh] = await new PayloadEncryptionCodec(api).encode([plain('new')]);
    expect(text(fresh!.metadata![KEY_ID_METADATA])).not.toBe(text(old!.metadata![KEY_ID_METADATA]));
    expect((await worker.decode([old!, fresh!])).map(value)).toEqual(['old', 'new']);
  });
});

describe("Warden's failure converter", () => {
  const { failureConverter } = createRequire(import.meta.url)(FAILURE_CONVERTER_PATH) as { failureConverter: FailureConverter };

  it('moves the message and stack trace into a payload, which the codec encrypts', async () => {
    const codec = new PayloadEncryptionCodec(envKeyring());
    const failure = failureConverter.errorToFailure(
      ApplicationFailure.create({ type: 'Boom', message: `failed: ${SECRET}` }),
      defaultPayloadConverter,
    );
    expect(failure.message).toBe('Encoded failure');
    expect(failure.stackTrace).toBe('');
    expect(failure.applicationFailureInfo?.type).toBe('Boom');
    const [encrypted] = await codec.encode([failure.encodedAttributes!]);
    expect(Buffer.from(encrypted!.data!).includes(SECRET)).toBe(false);
    const [attributes] = await codec.decode([encrypted!]);
    expect(value(attributes!)).toMatchObject({ message: `failed: ${SECRET}` });
  });
});
