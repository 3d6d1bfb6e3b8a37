/**
 * Warden's DataConverter, the one every Temporal client and worker of a deployment uses: the
 * payload codec (AES-256-GCM, fail closed) and a failure converter that moves failure messages and
 * stack traces into an encrypted payload. Processes that share a Temporal namespace must share the
 * master keys (WARDEN_MASTER_KEY, or one WARDEN_DATA_DIR with its key file).
 */
import { fileURLToPath } from 'node:url';
import { METADATA_ENCODING_KEY, type DataConverter, type Payload, type PayloadCodec } from '@temporalio/common';
import type { Config } from './config.js';
import { Keyring } from './keyring.js';
import { PayloadCodecError, PayloadEncryptionCodec } from './payload-codec.js';
import { UNDECODABLE_KEY } from './undecodable.js';

export { UNDECODABLE_KEY } from './undecodable.js';

/** The failure converter by path: clients and workers `require()` it, the workflow bundler includes it. */
export const FAILURE_CONVERTER_PATH = fileURLToPath(new URL('./failure-converter.cjs', import.meta.url));

/** The DataConverter for `new Client({ dataConverter })` and `Worker.create({ dataConverter })`. */
export function createDataConverter(codec: PayloadEncryptionCodec): DataConverter {
  return { payloadCodecs: [codec], failureConverterPath: FAILURE_CONVERTER_PATH };
}

/**
 * The DataConverter of workers. A payload the codec refuses (plaintext, a foreign key, tampered
 * bytes) would fail the workflow task on every retry, wedging the workflow for good: anyone who
 * reaches Temporal's port could do that with one signal. In a worker it decodes instead to
 * `{"warden_undecodable": "<why>"}`, an object no handler accepts (each checks its argument), so
 * the message is refused and recorded while the workflow carries on; a workflow's own input that
 * does not decode still fails its task (refuseUndecodableInput). Nothing an attacker wrote is
 * passed on: only the codec's reason.
 */
export function createWorkerDataConverter(codec: PayloadEncryptionCodec): DataConverter {
  const tolerant: PayloadCodec = {
    encode: (payloads) => codec.encode(payloads),
    async decode(payloads) {
      return payloads.map((payload) => {
        try {
          return codec.decrypt(payload);
        } catch (err) {
          if (!(err instanceof PayloadCodecError)) throw err;
          return undecodable(err.message);
        }
      });
    },
  };
  return { payloadCodecs: [tolerant], failureConverterPath: FAILURE_CONVERTER_PATH };
}

function undecodable(reason: string): Payload {
  return {
    metadata: { [METADATA_ENCODING_KEY]: Buffer.from('json/plain') },
    data: Buffer.from(JSON.stringify({ [UNDECODABLE_KEY]: reason })),
  };
}

/** The payload codec of this process, from the configured master keys; says so when plaintext is let through. */
export function loadPayloadCodec(config: Config, log: { warn(details: object, message: string): void }): PayloadEncryptionCodec {
  const keyring = Keyring.load({
    masterKey: config.masterKey,
    previousMasterKeys: config.masterKeyPrevious,
    dataDir: config.dataDir,
    onKeyFileCreated: (file) => log.warn({ file }, 'created the master key file (mode 0600): back it up, or set WARDEN_MASTER_KEY'),
  });
  if (config.payloadAllowPlaintext) {
    log.warn(
      {},
      'WARDEN_PAYLOAD_ALLOW_PLAINTEXT is on: unencrypted Temporal payloads are accepted; turn it off once older workflows have finished',
    );
  }
  return new PayloadEncryptionCodec(keyring, { allowPlaintext: config.payloadAllowPlaintext });
}
