/**
 * A TLS frontend in front of the suite's Temporal dev server (which has no TLS), as a cluster's
 * would be: it demands a client certificate signed by its own test CA, then passes the bytes on.
 * The certificates are made with openssl in a temporary directory: `warden-test-ca` (which signs
 * the frontend, `temporal.test`, and Warden's client certificate `warden`) and `someone-else-ca`
 * (which signs `intruder`).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:tls';

export interface TlsTerminator {
  /** host:port of the TLS frontend. */
  address: string;
  /** The path of one of the made files (`<name>.pem`, `<name>.key`). */
  file(name: string): string;
  /** Handshakes the terminator refused, with the reason OpenSSL gave. */
  refused: string[];
  close(): Promise<void>;
}

export async function startTlsTerminator(upstream: string): Promise<TlsTerminator> {
  const dir = mkdtempSync(join(tmpdir(), 'warden-tls-'));
  const file = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const authority = (name: string) =>
    openssl('req', '-x509', ...newKey, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${name}`);
  const certificate = (name: string, ca: string, extensions: string) => {
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
  };
  authority('warden-test-ca');
  authority('someone-else-ca');
  certificate('frontend', 'warden-test-ca', 'subjectAltName=DNS:temporal.test\nextendedKeyUsage=serverAuth\n');
  certificate('warden', 'warden-test-ca', 'extendedKeyUsage=clientAuth\n');
  certificate('intruder', 'someone-else-ca', 'extendedKeyUsage=clientAuth\n');

  const [host, port] = upstream.split(':');
  const refused: string[] = [];
  const proxy = createServer(
    {
      key: readFileSync(file('frontend.key')),
      cert: readFileSync(file('frontend.pem')),
      ca: readFileSync(file('warden-test-ca.pem')),
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: ['h2'],
    },
    (socket) => {
      const upstreamSocket = netConnect(Number(port), host!);
      socket.pipe(upstreamSocket).pipe(socket);
      const close = () => (socket.destroy(), upstreamSocket.destroy());
      socket.on('error', close);
      upstreamSocket.on('error', close);
    },
  );
  proxy.on('tlsClientError', (err) => refused.push(err.message));
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    file,
    refused,
    close: async () => {
      await new Promise((resolve) => proxy.close(resolve));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
