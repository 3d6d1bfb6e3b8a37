/**
 * How every Warden process reaches Temporal: the API, the workers and the scripts build their
 * connections from here alone. The settings are Temporal's own environment configuration
 * (`@temporalio/envconfig`, the same as the Temporal CLI's): a profile in a TOML file, overridden
 * by `TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, `TEMPORAL_TLS_*` and
 * `TEMPORAL_GRPC_META_*`.
 *
 * Which wins: an explicit variable of this process over the profile file, and Warden's own
 * `WARDEN_TEMPORAL_TLS_*` over any TLS the profile or `TEMPORAL_TLS_*` give. The default profile
 * file is read without being asked for (it is the CLI's, in the home directory), so it must not
 * silently replace what an operator set for this process; and Warden's TLS variables replace the
 * profile's TLS as a whole, never mixing one source's CA with another's certificate.
 *
 * The API key and the gRPC headers are secrets: they reach the connection options and nothing
 * else. A TemporalConnection's summary(), JSON and inspection show where and how it connects,
 * never them.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inspect } from 'node:util';
import type { TLSConfig } from '@temporalio/client';
import { loadClientConfigProfile, toClientOptions, type ClientConfigProfile } from '@temporalio/envconfig';
import type { Config } from './config.js';
import { temporalTls, type TemporalTlsSettings } from './temporal-tls.js';

/** The options Connection.connect (client) and NativeConnection.connect (worker) both take. */
export interface TemporalConnectionOptions {
  address: string;
  tls?: TLSConfig | boolean;
  apiKey?: string;
  metadata?: Record<string, string>;
}

/** What a log line or a status page may show of the connection. */
export interface TemporalConnectionSummary {
  address: string;
  namespace: string;
  /** The TOML file read, if any. */
  config_file: string | null;
  profile: string;
  tls: 'off' | 'server' | 'mutual';
  /** Where the TLS settings came from. */
  tls_from: 'WARDEN_TEMPORAL_TLS_*' | 'profile' | 'api key' | null;
  /** Whether an API key is set (never the key; `api_key` is a name the log redacts). */
  api_key_set: boolean;
  /** The names of the extra gRPC headers; their values may be credentials. */
  grpc_meta: string[];
}

export type TemporalProfileEnv = Record<string, string | undefined>;

/** A profile as loaded, with the file it came from. */
export interface TemporalProfile {
  profile: ClientConfigProfile;
  name: string;
  configFile: string | null;
}

/** The file the Temporal CLI reads when TEMPORAL_CONFIG_FILE is unset (Linux: the XDG config dir). */
function defaultConfigFile(env: TemporalProfileEnv): string | undefined {
  // As envconfig does: a relative XDG_CONFIG_HOME means no default file, not the home directory's.
  const xdg = env.XDG_CONFIG_HOME;
  const dir = xdg ? (xdg.startsWith('/') ? xdg : undefined) : env.HOME && join(env.HOME, '.config');
  return dir && join(dir, 'temporalio', 'temporal.toml');
}

/** Which profile of which file: TEMPORAL_PROFILE and TEMPORAL_CONFIG_FILE, as loadConfig read them. */
export interface TemporalProfileSource {
  configFile?: string;
  profile?: string;
}

/**
 * The profile with the environment's overrides applied. A file named by TEMPORAL_CONFIG_FILE must
 * exist (envconfig would skip a missing one, and connect somewhere the operator did not mean);
 * the default file is read when it exists. Empty variables count as unset, as in loadConfig.
 */
export function loadTemporalProfile(source: TemporalProfileSource, rawEnv: TemporalProfileEnv): TemporalProfile {
  const env = Object.fromEntries(Object.entries(rawEnv).filter((e): e is [string, string] => e[1] !== undefined && e[1] !== ''));
  const fallback = defaultConfigFile(env);
  const configFile = source.configFile ?? (fallback && existsSync(fallback) ? fallback : null);
  let data: string | undefined;
  if (configFile) {
    try {
      data = readFileSync(configFile, 'utf8');
    } catch (err) {
      throw new Error(`TEMPORAL_CONFIG_FILE: cannot read ${configFile}: ${(err as Error).message}`);
    }
  }
  const name = source.profile ?? 'default';
  if (data === undefined && source.profile)
    throw new Error(`TEMPORAL_PROFILE: profile "${name}" asked for, but there is no config file (TEMPORAL_CONFIG_FILE)`);
  try {
    const profile = loadClientConfigProfile({
      ...(data !== undefined ? { configSource: { data } } : { disableFile: true }),
      profile: name,
      overrideEnvVars: env,
    });
    return { profile, name, configFile };
  } catch (err) {
    // A TOML error quotes the lines around it, which may hold the API key: only its position is told.
    const at = err as { line?: number; column?: number };
    const problem = at.line !== undefined ? `not valid TOML at line ${at.line}, column ${at.column}` : (err as Error).message;
    throw new Error(`${configFile ? `${configFile}: ` : ''}${problem}`);
  }
}

export class TemporalConnection {
  readonly address: string;
  readonly namespace: string;
  readonly #tls: TLSConfig | boolean | undefined;
  readonly #apiKey: string | undefined;
  readonly #metadata: Record<string, string> | undefined;
  readonly #summary: TemporalConnectionSummary;

  constructor(address: string, namespace: string, from: TemporalProfile, tlsSettings: TemporalTlsSettings) {
    const { profile } = from;
    if (Boolean(profile.tls?.clientCert) !== Boolean(profile.tls?.clientKey))
      throw new Error(
        `the Temporal profile "${from.name}" has a client certificate without its key, or a key without its certificate: give both, or neither`,
      );
    const wardenTls = temporalTls(tlsSettings);
    let profileTls: TLSConfig | boolean | undefined;
    try {
      profileTls = toClientOptions(profile).connectionOptions.tls ?? undefined;
    } catch (err) {
      throw new Error(`the Temporal profile "${from.name}"'s TLS files: ${(err as Error).message}`);
    }
    const tls = wardenTls ?? profileTls;
    const apiKey = profile.apiKey;
    // Fail closed: an API key over plaintext is readable by anyone on the way to Temporal.
    if (apiKey !== undefined && tls === false)
      throw new Error('a Temporal API key is set with TLS disabled (TEMPORAL_TLS=false or tls.disabled): it would travel in clear text');
    this.address = address;
    this.namespace = namespace;
    this.#tls = tls;
    this.#apiKey = apiKey;
    this.#metadata = profile.grpcMeta && Object.keys(profile.grpcMeta).length > 0 ? { ...profile.grpcMeta } : undefined;
    const on = tls !== undefined && tls !== false;
    this.#summary = {
      address,
      namespace,
      config_file: from.configFile,
      profile: from.name,
      tls: !on ? 'off' : typeof tls === 'object' && tls.clientCertPair ? 'mutual' : 'server',
      tls_from: wardenTls ? 'WARDEN_TEMPORAL_TLS_*' : profile.tls ? 'profile' : on ? 'api key' : null,
      api_key_set: apiKey !== undefined,
      grpc_meta: Object.keys(this.#metadata ?? {}).sort(),
    };
  }

  /** A fresh options object for Connection.connect or NativeConnection.connect. */
  connectionOptions(): TemporalConnectionOptions {
    return {
      address: this.address,
      ...(this.#tls !== undefined ? { tls: this.#tls } : {}),
      ...(this.#apiKey !== undefined ? { apiKey: this.#apiKey } : {}),
      ...(this.#metadata ? { metadata: { ...this.#metadata } } : {}),
    };
  }

  /** What a log line shows: where and how it connects, never the key nor a header's value. */
  summary(): TemporalConnectionSummary {
    return { ...this.#summary, grpc_meta: [...this.#summary.grpc_meta] };
  }

  toJSON(): TemporalConnectionSummary {
    return this.summary();
  }

  [inspect.custom](): TemporalConnectionSummary {
    return this.summary();
  }
}

/**
 * The connection of this process: the address and namespace loadConfig resolved (the profile's,
 * unless TEMPORAL_ADDRESS or TEMPORAL_NAMESPACE say otherwise), TLS, the API key and headers from
 * the same profile. Certificate files are read once, here; one that cannot be read stops the process.
 */
export function temporalConnection(
  config: Pick<Config, 'temporalAddress' | 'temporalNamespace' | 'temporalConfigFile' | 'temporalProfile'> & TemporalTlsSettings,
  env: TemporalProfileEnv = process.env,
): TemporalConnection {
  const profile = loadTemporalProfile({ configFile: config.temporalConfigFile, profile: config.temporalProfile }, env);
  return new TemporalConnection(config.temporalAddress, config.temporalNamespace, profile, config);
}
