/**
 * Mutual TLS to Temporal (domain/temporal-tls.ts): the dev server has no TLS, so a real TLS
 * terminator (test/support/tls-terminator.ts) that demands a client certificate signed by the
 * test's CA stands in front of it, as a cluster's frontend would. The API's client and a worker's
 * native connection get through with Warden's configuration; a plaintext client, one without a
 * certificate and one with a certificate of another CA are turned away.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Client, Connection, type TLSConfig } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../domain/config.js';
import { createDataConverter, createWorkerDataConverter } from '../../domain/data-converter.js';
import { temporalTls } from '../../domain/temporal-tls.js';
import { testPayloadCodec, uniqueId } from '../support/helpers.js';
import { startTlsTerminator, type TlsTerminator } from '../support/tls-terminator.js';

let terminator: TlsTerminator;
let address: string;
let refused: string[];
const file = (name: string) => terminator.file(name);

beforeAll(async () => {
  terminator = await startTlsTerminator(inject('temporalAddress'));
  ({ address, refused } = terminator);
});

afterAll(() => terminator?.close());

const wardenTls = () =>
  temporalTls({
    temporalTlsCa: file('warden-test-ca.pem'),
    temporalTlsCert: file('warden.pem'),
    temporalTlsKey: file('warden.key'),
    temporalTlsServerName: 'temporal.test',
  });

describe("with Warden's client certificate", () => {
  it("the API's client connects, and a worker's native connection runs a workflow through the terminator", async () => {
    const connection = await Connection.connect({ address, tls: wardenTls(), connectTimeout: 10_000 });
    const native = await NativeConnection.connect({ address, tls: wardenTls() });
    try {
      const client = new Client({ connection, dataConverter: createDataConverter(testPayloadCodec()) });
      const taskQueue = uniqueId('tls');
      const worker = await Worker.create({
        connection: native,
        taskQueue,
        workflowBundle: { codePath: inject('workflowBundlePath') },
        dataConverter: createWorkerDataConverter(testPayloadCodec()),
      });
      const event = {
        id: randomUUID(),
        type: 'emergency_stop',
        time: new Date().toISOString(),
        severity: 'critical',
        summary: 'mTLS',
        details: {},
      };
      const delivered = await worker.runUntil(
        client.workflow.execute('alertWorkflow', { workflowId: uniqueId('tls-alert'), taskQueue, args: [{ event, targets: [] }] }),
      );
      expect(delivered).toEqual([]);
    } finally {
      await connection.close();
      await native.close();
    }
  });
});

describe('without it, the frontend is closed', () => {
  const attempt = (tls: TLSConfig | undefined) => Connection.connect({ address, tls, connectTimeout: 3_000 });

  it('a plaintext client, a client with no certificate and one whose certificate another CA signed are refused', async () => {
    const before = refused.length;
    await expect(attempt(undefined)).rejects.toThrow();
    await expect(
      attempt({ serverRootCACertificate: readFileSync(file('warden-test-ca.pem')), serverNameOverride: 'temporal.test' }),
    ).rejects.toThrow();
    await expect(
      attempt({
        serverRootCACertificate: readFileSync(file('warden-test-ca.pem')),
        serverNameOverride: 'temporal.test',
        clientCertPair: { crt: readFileSync(file('intruder.pem')), key: readFileSync(file('intruder.key')) },
      }),
    ).rejects.toThrow();
    // The terminator itself turned the certificate-less and the foreign handshakes away.
    expect(refused.slice(before).join('\n')).toMatch(/certificate/i);
  });

  it('Warden refuses a frontend whose certificate its CA did not sign', async () => {
    const other = temporalTls({
      temporalTlsCa: file('someone-else-ca.pem'),
      temporalTlsCert: file('warden.pem'),
      temporalTlsKey: file('warden.key'),
      temporalTlsServerName: 'temporal.test',
    });
    await expect(Connection.connect({ address, tls: other, connectTimeout: 3_000 })).rejects.toThrow();
  });
});

describe('configuration', () => {
  it('is off unless set; a certificate needs its key; a file that cannot be read or is not PEM is named', () => {
    expect(temporalTls({})).toBeUndefined();
    expect(() => loadConfig({ WARDEN_TEMPORAL_TLS_CERT: file('warden.pem') })).toThrow(
      /WARDEN_TEMPORAL_TLS_KEY: a client certificate needs its key and a key its certificate/,
    );
    expect(() => temporalTls({ temporalTlsCa: file('missing.pem') })).toThrow(/^WARDEN_TEMPORAL_TLS_CA: cannot read .*missing\.pem/);
    expect(() => temporalTls({ temporalTlsCa: file('warden.ext') })).toThrow(/^WARDEN_TEMPORAL_TLS_CA: .*warden\.ext is not a PEM file$/);
    const config = loadConfig({ WARDEN_TEMPORAL_TLS_CA: file('warden-test-ca.pem'), WARDEN_TEMPORAL_TLS_SERVER_NAME: 'temporal.test' });
    expect(temporalTls(config)).toEqual({
      serverRootCACertificate: readFileSync(file('warden-test-ca.pem')),
      serverNameOverride: 'temporal.test',
    });
  });
});
