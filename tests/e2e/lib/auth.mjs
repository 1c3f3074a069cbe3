// auth — what the authorization tests (auth_*.test.mjs) add to the harness:
// tokens minted with Node's crypto as README's example does, JWK Set and
// htpasswd files the servers can read, a login endpoint for nginx
// auth_request, a database of its own for pgfeed.authorize, and the matrix
// of request forms every front server must refuse alike.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

import { request } from './http.mjs';
import { openSse } from './sse_probe.mjs';
import { serverUser, testEnv } from './env.mjs';

/** The HS256 secret of the tests' JWK Set (kid k1). */
export const SECRET = randomBytes(32);

const b64 = (v) => Buffer.from(v).toString('base64url');

/**
 * README's minting example, with any claims: HS256 over {sub, exp, iat, ...}.
 * @param {{sub?: string, ttl?: number, [claim: string]: any}} claims
 * @param {{secret?: Buffer, header?: object}} [options]
 */
export function mintToken({ ttl = 3600, ...claims }, options = {}) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64(JSON.stringify(options.header ?? { alg: 'HS256', kid: 'k1', typ: 'JWT' }));
  const body = b64(JSON.stringify({ exp: now + ttl, iat: now, ...claims }));
  const sig = createHmac('sha256', options.secret ?? SECRET).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

/**
 * A directory every server user can read, removed by cleanup(); owned by the
 * server user when writable (a daemon's socket goes there).
 */
export function readableDir(kind, { writable = false } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pgfeed-e2e-${kind}-`));
  fs.chmodSync(dir, 0o755);
  const user = serverUser();
  if (writable && user) fs.chownSync(dir, user.uid, user.gid);
  return {
    dir,
    write(name, text) {
      const file = path.join(dir, name);
      fs.writeFileSync(file, text);
      fs.chmodSync(file, 0o644);
      return file;
    },
    cleanup() {
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The JWK Set file with SECRET as k1. */
export function writeJwks(files) {
  return files.write('jwks.json', JSON.stringify({ keys: [{ kty: 'oct', kid: 'k1', alg: 'HS256', k: b64(SECRET) }] }));
}

/** An htpasswd file (APR1-MD5, which Apache and lighttpd both read) of {user: password}. */
export function writeHtpasswd(files, users) {
  const file = files.write('htpasswd', '');
  for (const [user, password] of Object.entries(users)) {
    execFileSync('htpasswd', ['-b', '-m', file, user, password], { stdio: 'ignore' });
  }
  fs.chmodSync(file, 0o644);
  return file;
}

export function basic(user, password) {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/**
 * The application's login endpoint for nginx auth_request: a session cookie
 * names the user (X-Remote-User), no cookie is anonymous (204), an unknown
 * session is refused (401). Counts its calls.
 * @param {Record<string,string>} sessions  cookie value -> user
 */
export async function startLoginEndpoint(sessions) {
  const seen = [];
  const srv = http.createServer((req, res) => {
    const m = /(?:^|;\s*)session=([^;]+)/.exec(req.headers.cookie ?? '');
    seen.push(req.headers['x-original-uri']);
    if (!m) {
      res.writeHead(204).end();
    } else if (sessions[m[1]]) {
      res.writeHead(200, { 'X-Remote-User': sessions[m[1]] }).end();
    } else {
      res.writeHead(401).end();
    }
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${srv.address().port}/auth`,
    seen,
    close: () => new Promise((resolve) => srv.close(resolve)),
  };
}

/**
 * A database of its own with pgfeed installed, so a test can define
 * pgfeed.authorize without touching the one other tests share.
 */
export async function authDatabase() {
  const env = testEnv();
  const name = `pgfeed_e2e_authz_${process.pid}_${randomBytes(3).toString('hex')}`;
  const psql = (database, args) =>
    new Promise((resolve, reject) => {
      execFile('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', ...args], {
        env: { ...process.env, PGDATABASE: database },
        timeout: 30000,
      }, (err, stdout, stderr) => (err ? reject(new Error(`psql: ${stderr || err.message}`)) : resolve(stdout.trim())));
    });
  await psql(env.pg.PGDATABASE, ['-c', `CREATE DATABASE ${name}`]);
  await psql(name, ['-f', path.join(env.sourceDir, 'sql/install.sql')]);
  return {
    name,
    sql: (text) => psql(name, ['-c', text]),
    drop: () => psql(env.pg.PGDATABASE, ['-c', `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`]),
  };
}

/**
 * Every form a read can take, for a channel the principal may read (mine)
 * and one it may not (theirs). Each must answer `allowed` for mine and
 * `refused` for any request that names theirs.
 */
export function readForms(mine, theirs) {
  const e = encodeURIComponent;
  return [
    { name: 'path', mine: `/feed/${mine}`, theirs: `/feed/${theirs}` },
    { name: 'channel=', mine: `/feed/?channel=${e(mine)}`, theirs: `/feed/?channel=${e(theirs)}` },
    { name: 'several channel=', mine: `/feed/?channel=${e(mine)}`, theirs: `/feed/?channel=${e(mine)}&channel=${e(theirs)}` },
    { name: 'since= version', mine: `/feed/${mine}?since=0`, theirs: `/feed/${theirs}?since=0` },
    { name: 'since= cursor pairs', mine: `/feed/?channel=${e(mine)}&since=${e(`${mine}=0`)}`, theirs: `/feed/?channel=${e(mine)}&channel=${e(theirs)}&since=${e(`${mine}=0,${theirs}=0`)}` },
    { name: 'since=now', mine: `/feed/${mine}?since=now`, theirs: `/feed/${theirs}?since=now` },
    { name: 'If-None-Match', mine: `/feed/${mine}`, theirs: `/feed/${theirs}`, headers: { 'If-None-Match': '"0"' } },
    { name: 'long poll', mine: `/feed/${mine}?wait=1`, theirs: `/feed/${theirs}?wait=1` },
    { name: 'HEAD', mine: `/feed/${mine}`, theirs: `/feed/${theirs}`, method: 'HEAD' },
    { name: 'SSE', mine: `/feed/${mine}`, theirs: `/feed/${theirs}`, sse: true },
    { name: 'SSE Last-Event-ID', mine: `/feed/${mine}`, theirs: `/feed/${theirs}`, sse: true, headers: { 'Last-Event-ID': '0' } },
  ];
}

/** One request of readForms; SSE streams are closed as soon as their status is known. */
async function sendForm(base, form, reqPath, headers) {
  if (form.sse) {
    const s = await openSse(base, reqPath, { ...headers, ...form.headers });
    const out = { status: s.status, headers: s.headers, body: s.status === 200 ? '' : await bodyOf(s) };
    s.close();
    return out;
  }
  return request(base, reqPath, { method: form.method, headers: { ...headers, ...form.headers } });
}

async function bodyOf(stream) {
  await stream.ended;
  return stream.raw();
}

/**
 * Asserts the whole matrix: mine answers 200 (304 for If-None-Match when
 * current), theirs answers `refused` with problem+json naming the channel.
 */
export async function assertReadMatrix(base, { mine, theirs, headers = {}, refused = 403 }) {
  for (const form of readForms(mine, theirs)) {
    const ok = await sendForm(base, form, form.mine, headers);
    assert.ok([200, 304].includes(ok.status), `${form.name}: ${form.mine} answered ${ok.status} ${ok.body ?? ''}`);
    const no = await sendForm(base, form, form.theirs, headers);
    assert.equal(no.status, refused, `${form.name}: ${form.theirs} answered ${no.status} ${no.body ?? ''}`);
    if (form.method !== 'HEAD') {
      assert.match(String(no.headers['content-type']), /application\/problem\+json/, `${form.name}: problem+json`);
      // pgfeed.js drops exactly the channel a 403's problem body names.
      if (refused === 403) assert.equal(JSON.parse(no.body).channel, theirs, `${form.name}: the 403 names the channel`);
    }
    if (refused === 401) assert.match(String(no.headers['www-authenticate']), /^Bearer/, `${form.name}: WWW-Authenticate`);
  }
}
