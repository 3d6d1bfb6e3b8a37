/**
 * Mutual TLS to Temporal (domain/temporal-tls.ts): the dev server has no TLS, so a real TLS
 * terminator that demands a client certificate signed by the test's CA stands in front of it, as
 * a cluster's frontend would. The API's client and a worker's native connection get through with
 * Warden's configuration; a plaintext client, one without a certificate and one with a
 * certificate of another CA are turned away.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:tls';
import { Client, Connection, type TLSConfig } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../domain/config.js';
import { createDataConverter, createWorkerDataConverter } from '../../domain/data-converter.js';
import { temporalTls } from '../../domain/temporal-tls.js';
import { testPayloadCodec, uniqueId } from '../support/helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'warden-tls-'));
const file = (name: string) => join(dir, name);
const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function authority(name: string) {
  openssl('req', '-x509', ...newKey, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${name}`);
}
function certificate(name: string, ca: string, extensions: string) {
  openssl('req', ...newKey, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
  writeFileSync(file(`${name}.ext`), extensions);
  openssl(
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    `${ca}.pem`,
    '-CAkey',
    `${ca}.key`,
    '-CAcreateserial',
    '-out',
    `${name}.pem`,
    '-days',
    '2',
    '-extfile',
    `${name}.ext`,
  );
}

let proxy: Server;
let address: string;
/** Handshakes the terminator refused, with the reason OpenSSL gave. */
const refused: string[] = [];

beforeAll(async () => {
  authority('warden-test-ca');
  authority('someone-else-ca');
  certificate('frontend', 'warden-test-ca', 'subjectAltName=DNS:temporal.test\nextendedKeyUsage=serverAuth\n');
  certificate('warden', 'warden-test-ca', 'extendedKeyUsage=clientAuth\n');
  certificate('intruder', 'someone-else-ca', 'extendedKeyUsage=clientAuth\n');

  const [host, port] = inject('temporalAddress').split(':');
  proxy = createServer(
    {
      key: readFileSync(file('frontend.key')),
      cert: readFileSync(file('frontend.pem')),
      ca: readFileSync(file('warden-test-ca.pem')),
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: ['h2'],
    },
    (socket) => {
      const upstream = netConnect(Number(port), host!);
      socket.pipe(upstream).pipe(socket);
      const close = () => (socket.destroy(), upstream.destroy());
      socket.on('error', close);
      upstream.on('error', close);
    },
  );
  proxy.on('tlsClientError', (err) => refused.push(err.message));
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  address = `127.0.0.1:${(proxy.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => proxy?.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

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
