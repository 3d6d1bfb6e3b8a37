/**
 * The payload codec: every payload Warden hands to Temporal (workflow inputs and results, activity
 * arguments and results, signals, updates, queries, memos, failure messages) is encrypted with
 * AES-256-GCM under the 'payload' key derived from the current master key, and names that key in
 * its metadata, so payloads written before a rotation still decrypt. It fails closed: a payload
 * that is not encrypted is refused, unless plaintext is explicitly allowed while migrating.
 *
 * For clients, workers, the API, scripts and tests; never imported by workflow code (it needs
 * node:crypto, and the worker decodes payloads before a workflow sees them).
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { METADATA_ENCODING_KEY, type Payload, type PayloadCodec } from '@temporalio/common';
import proto from '@temporalio/proto';
import type { Keyring } from './keyring.js';

// @temporalio/proto is CommonJS: Node's ESM loader sees only its default export.
const PayloadMessage = proto.temporal.api.common.v1.Payload;

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';
const CIPHER_METADATA = 'encryption-cipher';
const CIPHER = 'AES-256-GCM';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** A payload this codec will not decode: refused plaintext, an unknown key, or a failed authentication. */
export class PayloadCodecError extends Error {
  override name = 'PayloadCodecError';
}

export interface PayloadEncryptionOptions {
  /** Migration only (WARDEN_PAYLOAD_ALLOW_PLAINTEXT): pass unencrypted payloads through instead of refusing them. */
  allowPlaintext?: boolean;
}

export class PayloadEncryptionCodec implements PayloadCodec {
  /** Derived keys by key id: HKDF once per key, not once per payload. */
  private readonly keys = new Map<string, Buffer>();

  constructor(
    readonly keyring: Keyring,
    private readonly options: PayloadEncryptionOptions = {},
  ) {}

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => this.encrypt(payload));
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => this.decrypt(payload));
  }

  /** The whole payload, its metadata included, becomes the ciphertext: only the key id stays readable. */
  encrypt(payload: Payload): Payload {
    const keyId = this.keyring.currentId;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key(keyId), iv);
    // The key id is authenticated too: a payload relabelled with another key id fails.
    cipher.setAAD(Buffer.from(keyId));
    const plain = PayloadMessage.encode(payload).finish();
    return {
      metadata: {
        [METADATA_ENCODING_KEY]: Buffer.from(ENCRYPTED_ENCODING),
        [KEY_ID_METADATA]: Buffer.from(keyId),
        [CIPHER_METADATA]: Buffer.from(CIPHER),
      },
      data: Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]),
    };
  }

  decrypt(payload: Payload): Payload {
    if (!isEncrypted(payload)) {
      const encoding = text(payload.metadata?.[METADATA_ENCODING_KEY]);
      if (this.options.allowPlaintext) return payload;
      throw new PayloadCodecError(
        `refused a payload that is not encrypted (encoding ${encoding ? `"${encoding}"` : 'missing'}): Warden only accepts ${ENCRYPTED_ENCODING} payloads; ` +
          'WARDEN_PAYLOAD_ALLOW_PLAINTEXT=1 accepts plaintext while migrating older workflows',
      );
    }
    const keyId = text(payload.metadata?.[KEY_ID_METADATA]);
    if (!keyId) throw new PayloadCodecError(`an encrypted payload has no ${KEY_ID_METADATA} in its metadata`);
    const data = payload.data ?? new Uint8Array();
    if (data.length < IV_BYTES + TAG_BYTES)
      throw new PayloadCodecError(`an encrypted payload is too short (${data.length} bytes) to be one`);
    let key: Buffer;
    try {
      key = this.key(keyId);
    } catch (err) {
      throw new PayloadCodecError(`cannot decrypt a payload: ${(err as Error).message}`);
    }
    const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES));
    decipher.setAAD(Buffer.from(keyId));
    decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
    let plain: Buffer;
    try {
      plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
    } catch {
      throw new PayloadCodecError(`a payload encrypted under key ${keyId} failed authentication: it was altered or damaged`);
    }
    return PayloadMessage.decode(plain);
  }

  private key(keyId: string): Buffer {
    let key = this.keys.get(keyId);
    if (!key) this.keys.set(keyId, (key = this.keyring.derive('payload', keyId)));
    return key;
  }
}

/** Whether a payload claims to be one of ours (decrypt() then checks that it is). */
export const isEncrypted = (payload: Payload) => text(payload.metadata?.[METADATA_ENCODING_KEY]) === ENCRYPTED_ENCODING;

const text = (bytes: Uint8Array | null | undefined) => (bytes ? Buffer.from(bytes).toString('utf8') : undefined);
