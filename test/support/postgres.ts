/**
 * A throw-away PostgreSQL server for the tests: initdb in a temporary folder, started with pg_ctl
 * on 127.0.0.1 and a free port, as a user other than root (PostgreSQL refuses to run as root; as
 * root this runs it as `nobody`). The superuser (`postgres`) only makes databases; the stores
 * connect as `warden`, a plain role, the way a deployment should.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { PROJECT_ROOT } from '../../scripts/dev-server.js';

export interface TestPostgres {
  /** The superuser's URL (to make databases, and to play an attacker with every privilege). */
  adminUrl: string;
  stop(): void;
}

const NOBODY = 65534;

export async function startTestPostgres(port: number): Promise<TestPostgres> {
  const bindir = execFileSync('bash', [join(PROJECT_ROOT, 'scripts/setup-postgres.sh')])
    .toString()
    .trim();
  const dir = mkdtempSync(join(tmpdir(), 'warden-pg-'));
  const asRoot = process.getuid?.() === 0;
  const run = (program: string, args: string[]) =>
    execFileSync(asRoot ? 'runuser' : join(bindir, program), asRoot ? ['-u', 'nobody', '--', join(bindir, program), ...args] : args, {
      stdio: ['ignore', 'ignore', 'pipe'],
      cwd: dir,
    });
  const password = randomBytes(16).toString('hex');
  writeFileSync(join(dir, 'password'), password);
  if (asRoot) {
    chownSync(dir, NOBODY, NOBODY);
    chownSync(join(dir, 'password'), NOBODY, NOBODY);
  }
  chmodSync(dir, 0o700);
  const data = join(dir, 'data');
  run('initdb', ['-D', data, '-U', 'postgres', '--pwfile', join(dir, 'password'), '--auth=scram-sha-256', '-E', 'UTF8', '--no-sync']);
  const options = `-c listen_addresses=127.0.0.1 -c port=${port} -c unix_socket_directories=${dir} -c fsync=off -c max_connections=200`;
  run('pg_ctl', ['-D', data, '-l', join(dir, 'server.log'), '-o', options, '-w', '-t', '60', 'start']);
  const adminUrl = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE ROLE warden LOGIN PASSWORD '${password}'`);
  await admin.end();
  return {
    adminUrl,
    stop() {
      try {
        run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/**
 * A new, empty database owned by the plain `warden` role; its URL connects as that role. Each
 * test gets its own, so no test sees another's rows.
 */
export async function createTestDatabase(adminUrl: string): Promise<string> {
  const name = `warden_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name} OWNER warden`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.username = 'warden';
  url.pathname = `/${name}`;
  return url.toString();
}

/** The superuser's URL for the same database: an attacker who holds every privilege. */
export function superuserUrl(adminUrl: string, databaseUrl: string): string {
  const url = new URL(adminUrl);
  url.pathname = new URL(databaseUrl).pathname;
  return url.toString();
}
