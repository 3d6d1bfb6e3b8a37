/**
 * Warden's DataConverter, the one every Temporal client and worker of a deployment uses: the
 * payload codec (AES-256-GCM, fail closed) and a failure converter that moves failure messages and
 * stack traces into an encrypted payload. Processes that share a Temporal namespace must share the
 * master keys (WARDEN_MASTER_KEY, or one WARDEN_DATA_DIR with its key file).
 */
import { fileURLToPath } from 'node:url';
import type { DataConverter } from '@temporalio/common';
import type { Config } from './config.js';
import { Keyring } from './keyring.js';
import { PayloadEncryptionCodec } from './payload-codec.js';

/** The failure converter by path: clients and workers `require()` it, the workflow bundler includes it. */
export const FAILURE_CONVERTER_PATH = fileURLToPath(new URL('./failure-converter.cjs', import.meta.url));

/** The DataConverter for `new Client({ dataConverter })` and `Worker.create({ dataConverter })`. */
export function createDataConverter(codec: PayloadEncryptionCodec): DataConverter {
  return { payloadCodecs: [codec], failureConverterPath: FAILURE_CONVERTER_PATH };
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
    log.warn({}, 'WARDEN_PAYLOAD_ALLOW_PLAINTEXT is on: unencrypted Temporal payloads are accepted; turn it off once older workflows have finished');
  }
  return new PayloadEncryptionCodec(keyring, { allowPlaintext: config.payloadAllowPlaintext });
}
