/**
 * TLS to Temporal's frontend, from the configuration: off unless a CA, a client certificate or a
 * server name is set. With a client certificate it is mutual TLS, which a Temporal cluster can
 * require of every client and map to an authorizer (see docs/security.md). The files are read
 * once, at start-up; one that cannot be read stops the process, naming it.
 */
import { readFileSync } from 'node:fs';
import type { TLSConfig } from '@temporalio/client';
import type { Config } from './config.js';

export type TemporalTlsSettings = Pick<Config, 'temporalTlsCa' | 'temporalTlsCert' | 'temporalTlsKey' | 'temporalTlsServerName'>;

export function temporalTls(config: TemporalTlsSettings): TLSConfig | undefined {
  const { temporalTlsCa: ca, temporalTlsCert: cert, temporalTlsKey: key, temporalTlsServerName: serverName } = config;
  if (!ca && !cert && !key && !serverName) return undefined;
  if (Boolean(cert) !== Boolean(key))
    throw new Error('WARDEN_TEMPORAL_TLS_CERT and WARDEN_TEMPORAL_TLS_KEY go together: set both, or neither');
  return {
    ...(ca ? { serverRootCACertificate: pem(ca, 'WARDEN_TEMPORAL_TLS_CA') } : {}),
    ...(cert && key ? { clientCertPair: { crt: pem(cert, 'WARDEN_TEMPORAL_TLS_CERT'), key: pem(key, 'WARDEN_TEMPORAL_TLS_KEY') } } : {}),
    ...(serverName ? { serverNameOverride: serverName } : {}),
  };
}

function pem(path: string, variable: string): Buffer {
  let content: Buffer;
  try {
    content = readFileSync(path);
  } catch (err) {
    throw new Error(`${variable}: cannot read ${path}: ${(err as Error).message}`);
  }
  if (!content.includes('-----BEGIN ')) throw new Error(`${variable}: ${path} is not a PEM file`);
  return content;
}
