/**
 * The Temporal connection every process builds (domain/temporal-connection.ts, loadConfig): a TOML
 * profile as the Temporal CLI reads it, the environment's overrides, which of Warden's TLS
 * variables and the profile's wins, and an API key that reaches the connection options and no log.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { inspect } from 'node:util';
import type { TLSConfig } from '@temporalio/client';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../domain/config.js';
import { temporalConnection } from '../../domain/temporal-connection.js';
import { createLogger } from '../../telemetry/logger.js';

const API_KEY = 'tk-cloud-7f3a9c1e5b8d2f4a6c0e';
const HEADER_VALUE = 'Bearer header-secret-0b1c2d3e';
const dir = mkdtempSync(join(tmpdir(), 'warden-envconfig-'));
const file = (name: string, text: string) => {
  writeFileSync(join(dir, name), text);
  return join(dir, name);
};
const pem = (label: string) => `-----BEGIN CERTIFICATE-----\n${Buffer.from(label).toString('base64')}\n-----END CERTIFICATE-----\n`;
const profileCa = file('profile-ca.pem', pem('profile ca'));
const profileCert = file('profile.pem', pem('profile cert'));
const profileKey = file('profile.key', pem('profile key'));
const wardenCa = file('warden-ca.pem', pem('warden ca'));
const wardenCert = file('warden.pem', pem('warden cert'));
const wardenKey = file('warden.key', pem('warden key'));

const toml = file(
  'temporal.toml',
  `[profile.default]
address = "127.0.0.1:7233"

[profile.cloud]
address = "warden.a1b2c.tmprl.cloud:7233"
namespace = "warden.a1b2c"
api_key = "${API_KEY}"

[profile.mtls]
address = "temporal.internal:7233"
namespace = "warden-prod"
[profile.mtls.tls]
server_ca_cert_path = "${profileCa}"
client_cert_path = "${profileCert}"
client_key_path = "${profileKey}"
server_name = "frontend.internal"
[profile.mtls.grpc_meta]
x-tenant = "${HEADER_VALUE}"
`,
);

/** loadConfig and the connection, as a process builds them from its environment. */
const connect = (env: Record<string, string>) => {
  const config = loadConfig(env);
  return { config, temporal: temporalConnection(config, env) };
};

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a TOML profile', () => {
  it('gives the address, the namespace, the API key and TLS for it', () => {
    const { config, temporal } = connect({ TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'cloud' });
    expect(config.temporalAddress).toBe('warden.a1b2c.tmprl.cloud:7233');
    expect(config.temporalNamespace).toBe('warden.a1b2c');
    // An API key turns TLS on, as the Temporal CLI does.
    expect(temporal.connectionOptions()).toEqual({ address: 'warden.a1b2c.tmprl.cloud:7233', apiKey: API_KEY, tls: true });
    expect(temporal.summary()).toMatchObject({
      tls: 'server',
      tls_from: 'api key',
      api_key_set: true,
      profile: 'cloud',
      config_file: toml,
    });
  });

  it('gives mutual TLS from its certificate files, and its gRPC headers', () => {
    const { temporal } = connect({ TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'mtls' });
    const options = temporal.connectionOptions();
    expect(options.tls).toMatchObject({ serverNameOverride: 'frontend.internal', clientCertPair: {} });
    const tls = options.tls as { serverRootCACertificate: Buffer; clientCertPair: { crt: Buffer; key: Buffer } };
    expect(Buffer.from(tls.serverRootCACertificate).toString()).toBe(pem('profile ca'));
    expect(Buffer.from(tls.clientCertPair.crt).toString()).toBe(pem('profile cert'));
    expect(Buffer.from(tls.clientCertPair.key).toString()).toBe(pem('profile key'));
    expect(options.metadata).toEqual({ 'x-tenant': HEADER_VALUE });
    expect(temporal.summary()).toMatchObject({ tls: 'mutual', tls_from: 'profile', api_key_set: false, grpc_meta: ['x-tenant'] });
  });

  it('is the default profile of the default file when nothing names one', () => {
    const home = join(dir, 'home');
    mkdirSync(join(home, '.config', 'temporalio'), { recursive: true });
    writeFileSync(
      join(home, '.config', 'temporalio', 'temporal.toml'),
      '[profile.default]\naddress = "from-home:7233"\nnamespace = "home"\n',
    );
    const { config, temporal } = connect({ HOME: home });
    expect(config.temporalAddress).toBe('from-home:7233');
    expect(config.temporalNamespace).toBe('home');
    expect(temporal.summary()).toMatchObject({ config_file: join(home, '.config', 'temporalio', 'temporal.toml'), tls: 'off' });
  });

  it('leaves the defaults when there is no file and no variable', () => {
    const { config, temporal } = connect({ HOME: join(dir, 'nobody') });
    expect(config.temporalAddress).toBe('127.0.0.1:7233');
    expect(config.temporalNamespace).toBe('default');
    expect(temporal.connectionOptions()).toEqual({ address: '127.0.0.1:7233' });
    expect(temporal.summary()).toMatchObject({ config_file: null, tls: 'off', tls_from: null, api_key_set: false });
  });
});

describe('what wins', () => {
  it("the process's TEMPORAL_* variables win over the profile file", () => {
    const { config, temporal } = connect({
      TEMPORAL_CONFIG_FILE: toml,
      TEMPORAL_PROFILE: 'cloud',
      TEMPORAL_ADDRESS: 'other.tmprl.cloud:7233',
      TEMPORAL_NAMESPACE: 'other',
      TEMPORAL_API_KEY: 'tk-from-the-environment',
    });
    expect(config.temporalAddress).toBe('other.tmprl.cloud:7233');
    expect(config.temporalNamespace).toBe('other');
    expect(temporal.connectionOptions()).toMatchObject({ address: 'other.tmprl.cloud:7233', apiKey: 'tk-from-the-environment' });
  });

  it("Warden's WARDEN_TEMPORAL_TLS_* replace the profile's TLS as a whole, and TEMPORAL_TLS_*", () => {
    const { temporal } = connect({
      TEMPORAL_CONFIG_FILE: toml,
      TEMPORAL_PROFILE: 'mtls',
      TEMPORAL_TLS_SERVER_NAME: 'from-temporal-tls.internal',
      WARDEN_TEMPORAL_TLS_CA: wardenCa,
      WARDEN_TEMPORAL_TLS_CERT: wardenCert,
      WARDEN_TEMPORAL_TLS_KEY: wardenKey,
    });
    const tls = temporal.connectionOptions().tls as TLSConfig;
    expect(Buffer.from(tls.serverRootCACertificate!).toString()).toBe(pem('warden ca'));
    expect(Buffer.from(tls.clientCertPair!.crt).toString()).toBe(pem('warden cert'));
    // Not the profile's server name, nor TEMPORAL_TLS_SERVER_NAME: one source, not a mix.
    expect(tls.serverNameOverride).toBeUndefined();
    expect(temporal.summary()).toMatchObject({ tls: 'mutual', tls_from: 'WARDEN_TEMPORAL_TLS_*' });
    // The profile's other settings still hold.
    expect(temporal.summary()).toMatchObject({ address: 'temporal.internal:7233', namespace: 'warden-prod', grpc_meta: ['x-tenant'] });
  });

  it("Warden's TLS variables keep working with no profile at all", () => {
    const { temporal } = connect({ TEMPORAL_ADDRESS: 'temporal.internal:7233', WARDEN_TEMPORAL_TLS_CA: wardenCa });
    expect(temporal.connectionOptions()).toEqual({
      address: 'temporal.internal:7233',
      tls: { serverRootCACertificate: Buffer.from(pem('warden ca')) },
    });
  });

  it('an empty variable counts as unset, as everywhere in the configuration', () => {
    const { config, temporal } = connect({
      TEMPORAL_CONFIG_FILE: toml,
      TEMPORAL_PROFILE: 'cloud',
      TEMPORAL_ADDRESS: '',
      TEMPORAL_API_KEY: '',
    });
    expect(config.temporalAddress).toBe('warden.a1b2c.tmprl.cloud:7233');
    expect(temporal.connectionOptions().apiKey).toBe(API_KEY);
    // An empty key in a profile-less environment turns nothing on.
    expect(connect({ TEMPORAL_API_KEY: '' }).temporal.connectionOptions()).toEqual({ address: '127.0.0.1:7233' });
  });
});

describe('refused at start-up', () => {
  it('a config file that is not there, or a profile that is not in it', () => {
    expect(() => loadConfig({ TEMPORAL_CONFIG_FILE: join(dir, 'missing.toml') })).toThrow(
      /TEMPORAL_CONFIG_FILE: cannot read .*missing\.toml/,
    );
    expect(() => loadConfig({ TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'staging' })).toThrow(/Profile 'staging' not found/);
    expect(() => loadConfig({ HOME: join(dir, 'nobody'), TEMPORAL_PROFILE: 'staging' })).toThrow(/TEMPORAL_PROFILE: .*no config file/);
  });

  it('an API key with TLS turned off: it would cross the network in clear text', () => {
    expect(() => connect({ TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'cloud', TEMPORAL_TLS: 'false' })).toThrow(/clear text/);
  });

  it("a profile's client certificate without its key", () => {
    const half = file('half.toml', `[profile.default]\n[profile.default.tls]\nclient_cert_path = "${profileCert}"\n`);
    expect(() => connect({ TEMPORAL_CONFIG_FILE: half })).toThrow(/client certificate without its key/);
  });

  it('a broken file, without quoting the line that may hold the key', () => {
    const broken = file('broken.toml', `[profile.default]\napi_key = "${API_KEY}\n`);
    let message = '';
    try {
      loadConfig({ TEMPORAL_CONFIG_FILE: broken });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/broken\.toml: not valid TOML at line 2/);
    expect(message).not.toContain(API_KEY);
  });
});

describe('the API key and the headers stay out of logs', () => {
  const env = { TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'mtls', TEMPORAL_API_KEY: API_KEY };

  it("in the processes' log lines, JSON.stringify and util.inspect", () => {
    const { config, temporal } = connect(env);
    expect(temporal.connectionOptions()).toMatchObject({ apiKey: API_KEY, metadata: { 'x-tenant': HEADER_VALUE } });
    let logged = '';
    const logger = createLogger('warden-test', 'info', new Writable({ write: (chunk, _enc, done) => ((logged += String(chunk)), done()) }));
    // As the API and the workers log it; and what logging the connection itself by mistake shows.
    logger.info({ temporal: temporal.summary(), config }, 'connecting to Temporal');
    logger.info({ temporal }, 'by mistake');
    expect(logged).toContain('"address":"temporal.internal:7233"');
    expect(logged).toContain('"api_key_set":true');
    for (const shown of [logged, JSON.stringify(temporal), inspect(temporal, { depth: 5 }), JSON.stringify(config)]) {
      expect(shown).not.toContain(API_KEY);
      expect(shown).not.toContain(HEADER_VALUE);
    }
  });

  it('changing the options a connection was given changes no other connection', () => {
    const { temporal } = connect(env);
    const first = temporal.connectionOptions();
    first.metadata!['x-tenant'] = 'changed';
    expect(temporal.connectionOptions().metadata).toEqual({ 'x-tenant': HEADER_VALUE });
  });
});
