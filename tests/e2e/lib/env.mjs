// env — what the e2e tests get from ctest, and who runs the web servers.
//
// ctest passes the throwaway cluster's libpq settings and the pgfeed binary
// (tests/CMakeLists.txt, PGFEED_TEST_PG_ENV). Web servers never run as root:
// Apache refuses to serve as root and pgfeed has no business with it. As root
// the harness starts each server with an unprivileged user's uid and gid from
// the beginning (no privilege dropping inside the server to get wrong); as
// anyone else the servers run as that user.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Names ctest must set (PGFEED_TEST_PG_ENV). */
const REQUIRED = ['PGFEED_BIN', 'PGHOST', 'PGPORT', 'PGUSER', 'PGDATABASE'];

/**
 * The test environment, checked once.
 * @returns {{bin: string, pg: Record<string, string>, sourceDir: string}}
 */
export function testEnv() {
  const missing = REQUIRED.filter((name) => !process.env[name]);
  if (missing.length) {
    throw new Error(
      `e2e: ${missing.join(', ')} not set; run through ctest (ctest -L e2e), which sets them`,
    );
  }
  const pg = {};
  for (const name of ['PGHOST', 'PGPORT', 'PGUSER', 'PGDATABASE']) pg[name] = process.env[name];
  return {
    bin: process.env.PGFEED_BIN,
    pg,
    sourceDir: process.env.PGFEED_SOURCE_DIR || path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..'),
  };
}

let cachedUser;

/**
 * The account servers run as: {name, uid, gid}, or null to run them as the
 * current user. As root: PGFEED_E2E_USER, default www-data (what Debian's
 * Apache, lighttpd and nginx use).
 */
export function serverUser() {
  if (cachedUser !== undefined) return cachedUser;
  if (process.getuid() !== 0) {
    cachedUser = null;
    return cachedUser;
  }
  const name = process.env.PGFEED_E2E_USER || 'www-data';
  let uid;
  let gid;
  try {
    uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
    gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
  } catch {
    throw new Error(`e2e: running as root, but there is no user ${name} to run the web servers as (set PGFEED_E2E_USER)`);
  }
  cachedUser = { name, uid, gid };
  return cachedUser;
}

/** spawn() options that run a child as serverUser(). */
export function asServerUser() {
  const user = serverUser();
  return user ? { uid: user.uid, gid: user.gid } : {};
}

/**
 * Fails early, with the reason, when the server user could not run pgfeed or
 * reach PostgreSQL's socket: otherwise every request would just be a 500.
 */
export function checkServerUserAccess(env) {
  const user = serverUser();
  if (!user) return;
  const checks = [[`-x`, env.bin, 'execute the pgfeed binary']];
  if (env.pg.PGHOST.startsWith('/')) {
    checks.push(['-x', env.pg.PGHOST, 'enter the PostgreSQL socket directory']);
    const socket = path.join(env.pg.PGHOST, `.s.PGSQL.${env.pg.PGPORT}`);
    if (fs.existsSync(socket)) checks.push(['-w', socket, 'connect to the PostgreSQL socket']);
  }
  for (const [flag, file, what] of checks) {
    const r = spawnSync('test', [flag, file], { uid: user.uid, gid: user.gid });
    if (r.status !== 0) {
      throw new Error(
        `e2e: user ${user.name} cannot ${what} (${file}); every parent directory needs the x permission for others`,
      );
    }
  }
}
