// SIGHUP (issue 15): the daemon re-reads what can be re-read and keeps
// serving — the token keys (--token-keys) and the log level
// (--log-level-file) — and a broken file keeps what was there. Straight to
// `pgfeed --listen` over FastCGI: no web server in between.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';

import { mintToken, readableDir, writeJwks } from './lib/auth.mjs';
import { fcgiGet } from './lib/fcgi_client.mjs';
import { unique } from './lib/pg.mjs';
import { waitFor } from './lib/resilience.mjs';
import { crashLines, makeRoot, startDaemon } from './lib/servers.mjs';

const SECOND_SECRET = randomBytes(32);
const ch = unique('public:reload');

describe('SIGHUP re-reads --token-keys and --log-level-file, and pgfeed keeps serving', () => {
  let files;
  let root;
  let d;
  let levelFile;
  let jwksFile;
  const log = () => fs.readFileSync(d.logs[0], 'utf8');
  /** Sends SIGHUP and waits for the line pgfeed logs once it has re-read. */
  async function hangUp(expect) {
    const before = log().length;
    process.kill(d.pid, 'SIGHUP');
    return waitFor(`pgfeed logs ${expect}`, async () => expect.test(log().slice(before)), { timeoutMs: 5000, everyMs: 50 });
  }
  /** A GET straight to the daemon; the log text it added. */
  async function get(pathInfo, headers = {}) {
    const before = log().length;
    const res = await fcgiGet(d.socket, pathInfo, { headers }).done;
    await new Promise((resolve) => setTimeout(resolve, 50)); // the record after the answer
    return { res, logged: log().slice(before) };
  }

  before(async () => {
    files = readableDir('reload');
    levelFile = files.write('level', 'info\n');
    jwksFile = writeJwks(files);
    root = makeRoot('reload');
    d = await startDaemon(root, {
      env: { PGFEED_LOG_LEVEL_FILE: levelFile, PGFEED_TOKEN_KEYS: jwksFile, PGFEED_ALLOW_USER: 'user:{user}' },
    });
  });
  after(() => {
    try {
      process.kill(d.pid, 'SIGKILL');
    } catch {}
    fs.rmSync(root, { recursive: true, force: true });
    files.cleanup();
  });

  it('the log level follows the file on SIGHUP; a broken file keeps the old one', async () => {
    const quiet = await get(`/${ch}`);
    assert.equal(quiet.res.status, 200, quiet.res.body);
    assert.doesNotMatch(quiet.logged, / debug /, 'info (the file) logs no debug records');

    fs.writeFileSync(levelFile, 'debug\n');
    await hangUp(/SIGHUP: log level debug/);
    const loud = await get(`/${ch}`);
    assert.equal(loud.res.status, 200, loud.res.body);
    assert.match(loud.logged, / debug req=\d+: answered 200/, 'debug records after the switch');

    fs.writeFileSync(levelFile, 'loud\n');
    await hangUp(/SIGHUP: keeping the old log level: --log-level-file .*expected error, warn, info or debug/);
    assert.match((await get(`/${ch}`)).logged, / debug req=\d+: answered 200/, 'still debug');

    fs.writeFileSync(levelFile, 'warn\n');
    await hangUp(/SIGHUP: log level warn/);
    assert.doesNotMatch((await get(`/${ch}`)).logged, / (debug|info) /, 'warn: nothing below it');
  });

  it('rotated token keys take effect on SIGHUP, without a restart', async () => {
    const next = mintToken({ sub: 'alice' }, { header: { alg: 'HS256', kid: 'k2', typ: 'JWT' }, secret: SECOND_SECRET });
    const auth = { Authorization: `Bearer ${next}` };
    assert.equal((await get('/user:alice', auth)).res.status, 401, 'k2 is not a key yet');
    fs.writeFileSync(levelFile, 'info\n'); // the last test left warn, which hides what follows
    const keys = JSON.parse(fs.readFileSync(jwksFile, 'utf8')).keys;
    keys.push({ kty: 'oct', kid: 'k2', alg: 'HS256', k: SECOND_SECRET.toString('base64url') });
    fs.writeFileSync(jwksFile, JSON.stringify({ keys }));
    await hangUp(/SIGHUP: token keys re-read/);
    const { res } = await get('/user:alice', auth);
    assert.equal(res.status, 200, res.body);
    // A broken key file keeps the keys pgfeed has.
    fs.writeFileSync(jwksFile, '{"keys":');
    await hangUp(/SIGHUP: keeping the old token keys/);
    assert.equal((await get('/user:alice', auth)).res.status, 200);
    assert.deepEqual(crashLines(log()), []);
  });
});
