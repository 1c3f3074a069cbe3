// Authorization with application-signed tokens and pgfeed.authorize (README
// "Authorization"), through nginx (apache/nginx-pgfeed.conf) in front of a
// pgfeed daemon with --token-keys, --token-cookie, --authorize-sql and a short
// --auth-cache-ttl, on a database of its own (the test defines
// pgfeed.authorize there, counting its calls):
//   a Bearer or cookie token reads its principal's channels in every request
//   form and nothing else; tampered, expired, alg-none, wrongly signed tokens
//   are 401 naming why; the channels claim grants; an SSE stream ends at
//   token expiry with `event: auth`, a held long poll is answered by then;
//   pgfeed.authorize is asked once per TTL, not per request; a stream whose
//   SQL authorization is revoked ends within the TTL and gets nothing after;
//   publishing is never anonymous; with no rule every read is refused and the
//   log says how to open them.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { assertReadMatrix, authDatabase, mintToken, readableDir, writeJwks } from './lib/auth.mjs';
import { fcgiGet } from './lib/fcgi_client.mjs';
import { checkWith } from './lib/foundation.mjs';
import { request } from './lib/http.mjs';
import { lit, unique } from './lib/pg.mjs';
import { crashLines, startDaemon, startNginx } from './lib/servers.mjs';
import { openSse } from './lib/sse_probe.mjs';
import { testEnv } from './lib/env.mjs';

const TTL = 2; // --auth-cache-ttl, s
const run = unique('t').replaceAll('_', '-');
const alice = `alice-${run}`;
const bob = `bob-${run}`;
const carol = `carol-${run}`;
const PUBLISH_TOKEN = `publish-${run}-0123456789`;

let files;
let db;
let server;
const check = checkWith(() => server);

const bearer = (token) => ({ Authorization: `Bearer ${token}` });
const cookie = (token) => ({ Cookie: `theme=x; pgfeed_token=${token}` });

async function publishTo(channel, data) {
  return Number(await db.sql(`SELECT pgfeed.publish(${lit(channel)}, 'note', ${lit(JSON.stringify(data))}::jsonb)`));
}

async function authorizeCalls(principal, channel) {
  return Number(await db.sql(`SELECT count(*) FROM e2e_authorize_calls WHERE principal = ${lit(principal)} AND channel = ${lit(channel)}`));
}

before(async () => {
  files = readableDir('tokens');
  db = await authDatabase();
  // The application's pgfeed.authorize: a grants table, and a log of every call.
  await db.sql(`
    CREATE TABLE e2e_grants (principal text, channel text);
    CREATE TABLE e2e_authorize_calls (principal text, channel text, at timestamptz DEFAULT clock_timestamp());
    GRANT SELECT ON e2e_grants TO PUBLIC;
    GRANT INSERT ON e2e_authorize_calls TO PUBLIC;
    CREATE OR REPLACE FUNCTION pgfeed.authorize(principal text, channel text) RETURNS boolean
    LANGUAGE plpgsql VOLATILE AS $$
    BEGIN
        INSERT INTO public.e2e_authorize_calls (principal, channel) VALUES (principal, channel);
        RETURN EXISTS (SELECT FROM public.e2e_grants g WHERE g.principal = $1 AND g.channel = $2);
    END $$;`);
  server = await startNginx({
    daemonEnv: {
      PGDATABASE: db.name,
      PGFEED_ALLOW: 'public:*',
      PGFEED_ALLOW_USER: 'user:{user}',
      PGFEED_TOKEN_KEYS: writeJwks(files),
      PGFEED_TOKEN_COOKIE: 'pgfeed_token',
      PGFEED_TOKEN_LEEWAY: '0',
      // Below nginx's 8 KB header line, so the oversized token reaches pgfeed.
      PGFEED_TOKEN_MAX_BYTES: '4096',
      PGFEED_AUTHORIZE_SQL: '1',
      PGFEED_AUTH_CACHE_TTL: String(TTL),
      PGFEED_PUBLISH: '1',
      PGFEED_PUBLISH_TOKEN_FILE: files.write('publish-token', `${PUBLISH_TOKEN}\n`),
      PGFEED_PUBLISH_ALLOW_USER: 'user:{user}',
      PGFEED_HEARTBEAT: '1',
      PGFEED_SSE_LIFETIME: '60',
    },
  });
});

after(async () => {
  const logs = server ? server.logsSince() : '';
  await server?.stop();
  await db?.drop();
  files?.cleanup();
  assert.deepEqual(crashLines(logs), [], 'pgfeed crashed or leaked');
});

describe('tokens', () => {
  check('a Bearer token reads its user channel and gets 403 on another in every form', async () => {
    await assertReadMatrix(server.base, { mine: `user:${alice}`, theirs: `user:${bob}`, headers: bearer(mintToken({ sub: alice })) });
  });

  check('the same from the token cookie (what EventSource sends)', async () => {
    await assertReadMatrix(server.base, { mine: `user:${alice}`, theirs: `user:${bob}`, headers: cookie(mintToken({ sub: alice })) });
  });

  check('without a token the user channel is 401 with WWW-Authenticate: Bearer', async () => {
    await assertReadMatrix(server.base, { mine: `public:${run}`, theirs: `user:${alice}`, refused: 401 });
  });

  check('bad tokens are 401 naming why, never echoing the token', async () => {
    const good = mintToken({ sub: alice });
    const [h, p, s] = good.split('.');
    const flip = (text, i) => text.slice(0, i) + (text[i] === 'A' ? 'B' : 'A') + text.slice(i + 1);
    const forged = Buffer.from(JSON.stringify({ sub: bob, exp: Math.floor(Date.now() / 1000) + 600 })).toString('base64url');
    const none = Buffer.from(JSON.stringify({ alg: 'none', kid: 'k1' })).toString('base64url');
    const cases = [
      ['signature bit', `${h}.${p}.${flip(s, 5)}`, /signature/],
      ['payload swapped', `${h}.${forged}.${s}`, /signature/],
      ['header bit', `${flip(h, 3)}.${p}.${s}`, /./],
      ['alg none', `${none}.${p}.`, /alg/],
      ['HS384 claimed', mintToken({ sub: alice }, { header: { alg: 'HS384', kid: 'k1' } }), /alg/],
      ['another secret', mintToken({ sub: alice }, { secret: Buffer.alloc(32, 7) }), /signature/],
      ['unknown kid', mintToken({ sub: alice }, { header: { alg: 'HS256', kid: 'k9' } }), /kid/],
      ['expired', mintToken({ sub: alice, ttl: -5 }), /expired/],
      ['not yet valid', mintToken({ sub: alice, nbf: Math.floor(Date.now() / 1000) + 300 }), /not valid yet/],
      ['no exp', mintToken({ sub: alice, exp: undefined }), /exp/],
      ['not a JWT', 'hello', /compact JWS/],
      ['oversized', 'a'.repeat(5000), /longer/],
    ];
    for (const [what, token, why] of cases) {
      for (const headers of [bearer(token), cookie(token)]) {
        const res = await request(server.base, `/feed/user:${alice}`, { headers });
        assert.equal(res.status, 401, `${what}: ${res.status} ${res.body}`);
        assert.match(res.json?.detail ?? '', why, `${what}: ${res.body}`);
        assert.ok(!res.body.includes(s) && !(token.length > 20 && res.body.includes(token)), `${what}: the token is echoed`);
        assert.match(String(res.headers['www-authenticate']), /error="invalid_token"/, what);
      }
    }
  });

  check('the channels claim grants its patterns, and only them', async () => {
    const token = mintToken({ sub: carol, channels: [`team:${run}:*`] });
    const yes = await request(server.base, `/feed/team:${run}:chat`, { headers: bearer(token) });
    assert.equal(yes.status, 200, yes.body);
    const no = await request(server.base, `/feed/?channel=team:${run}:chat&channel=team:other-${run}`, { headers: bearer(token) });
    assert.equal(no.status, 403, no.body);
    // A token without sub grants its channels too, and nothing by {user}.
    const anon = mintToken({ channels: [`team:${run}:*`] });
    assert.equal((await request(server.base, `/feed/team:${run}:x`, { headers: bearer(anon) })).status, 200);
    assert.equal((await request(server.base, `/feed/user:${alice}`, { headers: bearer(anon) })).status, 403);
  });

  check('an SSE stream ends at token expiry with a final event: auth', async () => {
    const channel = `user:${alice}`;
    const token = mintToken({ sub: alice, ttl: 3 });
    const s = await openSse(server.base, `/feed/${channel}`, cookie(token));
    assert.equal(s.status, 200);
    await sleep(300);
    await publishTo(channel, { n: 1 });
    await s.waitFor('the live event', (st) => st.events().some((e) => e.event === undefined), 5000);
    const auth = await s.waitFor('event: auth', (st) => st.events().find((e) => e.event === 'auth'), 6000);
    const ended = await s.ended;
    assert.ok(ended.clean, `the stream ended cleanly: ${JSON.stringify(ended)}`);
    assert.match(JSON.parse(auth.data).reason, /expired/);
    // Ends at exp (3 s after minting, less than a sweep late), far before --sse-lifetime.
    assert.ok(ended.at < 4500, `ended ${ended.at} ms after opening`);
    const last = s.items[s.items.length - 1];
    assert.equal(last.event, 'auth', 'event: auth is the last frame');
  });

  check('a held long poll is answered by the time its token expires', async () => {
    const started = Date.now();
    const res = await request(server.base, `/feed/user:${alice}?since=now&wait=20`, { headers: bearer(mintToken({ sub: alice, ttl: 2 })) });
    const took = Date.now() - started;
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(res.json.events, []);
    assert.ok(took < 3500, `answered after ${took} ms`);
  });
});

describe('pgfeed.authorize', () => {
  check('is asked once per TTL per (principal, channel), not per request', async () => {
    const room = `room:${run}-ttl`;
    await db.sql(`INSERT INTO e2e_grants VALUES (${lit(carol)}, ${lit(room)})`);
    const token = bearer(mintToken({ sub: carol }));
    const other = bearer(mintToken({ sub: bob }));
    for (let i = 0; i < 5; i++) {
      assert.equal((await request(server.base, `/feed/${room}`, { headers: token })).status, 200);
      assert.equal((await request(server.base, `/feed/${room}`, { headers: other })).status, 403);
    }
    assert.equal(await authorizeCalls(carol, room), 1, 'allowed: one call for five reads');
    assert.equal(await authorizeCalls(bob, room), 1, 'refused: one call for five reads');
    await sleep(TTL * 1000 + 300);
    assert.equal((await request(server.base, `/feed/${room}`, { headers: token })).status, 200);
    assert.equal(await authorizeCalls(carol, room), 2, 'asked again once the TTL ran out');
  });

  check('a stream whose authorization is revoked ends within the TTL and gets nothing after', async () => {
    const room = `room:${run}-revoke`;
    await db.sql(`INSERT INTO e2e_grants VALUES (${lit(carol)}, ${lit(room)})`);
    const s = await openSse(server.base, `/feed/${room}`, cookie(mintToken({ sub: carol })));
    assert.equal(s.status, 200, s.raw());
    await sleep(200);
    await publishTo(room, { n: 1 });
    await s.waitFor('event 1', (st) => st.events().length >= 1, 5000);
    await db.sql(`DELETE FROM e2e_grants WHERE channel = ${lit(room)}`);
    const revokedAt = Date.now() - s.started;
    const auth = await s.waitFor('event: auth', (st) => st.events().find((e) => e.event === 'auth'), (TTL + 3) * 1000);
    assert.ok(auth.at - revokedAt <= TTL * 1000 + 800, `ended ${auth.at - revokedAt} ms after the revocation`);
    await s.ended;
    // Published after the stream ended: never seen; and the next read is 403.
    await publishTo(room, { n: 2 });
    assert.deepEqual(s.events().filter((e) => e.event === undefined).map((e) => JSON.parse(e.data).data.n), [1]);
    const again = await request(server.base, `/feed/${room}`, { headers: cookie(mintToken({ sub: carol })) });
    assert.equal(again.status, 403, again.body);
  });
});

describe('publishing', () => {
  const post = (channel, headers) =>
    request(server.base, `/feed/${channel}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...headers },
      body: JSON.stringify({ type: 'note', data: { by: 'e2e' } }),
    });

  check('is never anonymous', async () => {
    const res = await post(`public:${run}`, {});
    assert.equal(res.status, 401, res.body);
  });

  check('the shared token from --publish-token-file publishes anywhere; a wrong one is 401', async () => {
    assert.equal((await post(`public:${run}`, bearer(PUBLISH_TOKEN))).status, 201);
    assert.equal((await post(`public:${run}`, bearer(`${PUBLISH_TOKEN}x`))).status, 401);
  });

  check('a token publishes where its publish claim or --publish-allow-user allows', async () => {
    const token = bearer(mintToken({ sub: alice, publish: [`news:${run}`] }));
    assert.equal((await post(`news:${run}`, token)).status, 201);
    assert.equal((await post(`user:${alice}`, token)).status, 201);
    const no = await post(`user:${bob}`, token);
    assert.equal(no.status, 403, no.body);
    assert.match(no.body, new RegExp(`user:${bob}`));
  });
});

describe('defaults', () => {
  check('with no rule every read is refused, and the log says how to open them', async () => {
    const root = readableDir('deny', { writable: true });
    const daemon = await startDaemon(root.dir, { env: { PGFEED_ALLOW: '' } });
    try {
      const res = await fcgiGet(daemon.socket, `/public:${run}`).done;
      assert.equal(res.status, 401, res.body);
      await sleep(100);
      const log = (await import('node:fs')).readFileSync(daemon.logs[0], 'utf8');
      assert.match(log, /every read is refused.*--allow/);
    } finally {
      process.kill(daemon.pid, 'SIGTERM');
      await sleep(300);
      root.cleanup();
    }
  });

  check('--publish without a way to authenticate publishers refuses to start', async () => {
    const { bin } = testEnv();
    const out = await new Promise((resolve) =>
      execFile(bin, ['--publish', '--listen', '/nonexistent/x.sock'], { env: { PATH: process.env.PATH } }, (err, stdout, stderr) =>
        resolve({ code: err?.code ?? 0, stderr }),
      ),
    );
    assert.equal(out.code, 2, out.stderr);
    assert.match(out.stderr, /never anonymous/);
  });
});
