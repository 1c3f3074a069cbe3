// Authorization behind each front server's own login, and with a token cookie
// under Apache CGI (README "Authorization"), with the apache/ configs unchanged:
//   Apache + mod_fcgid, Basic login against an htpasswd file (PGFEED_AUTH_USERFILE);
//   lighttpd + mod_auth against an htpasswd file;
//   nginx auth_request against the application's login endpoint;
//   Apache CGI with the application's token in a cookie (apache/pgfeed-cgi.conf).
// In each, alice reads user:alice and gets 403 on user:bob in every form of
// request (path, channel=, several channels, cursors, since=now,
// If-None-Match, long poll, HEAD, SSE, Last-Event-ID); anonymous requests
// read only what --allow opens and get 401 with WWW-Authenticate otherwise;
// the admin routes answer loopback clients only.
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';

import { assertReadMatrix, basic, mintToken, readableDir, startLoginEndpoint, writeHtpasswd, writeJwks } from './lib/auth.mjs';
import { fcgiGet } from './lib/fcgi_client.mjs';
import { checkWith } from './lib/foundation.mjs';
import { request } from './lib/http.mjs';
import { publish, unique } from './lib/pg.mjs';
import { crashLines, startApache, startLighttpd, startNginx } from './lib/servers.mjs';

// user:{user} is for the logged-in user; public:* for anyone. The user names
// carry the run's id so other runs' channels never collide.
const run = unique('a').replaceAll('_', '-');
const alice = `alice-${run}`;
const bob = `bob-${run}`;
const USERS = { [alice]: 'alice-pw', [bob]: 'bob-pw' };
const RULES = { PGFEED_ALLOW: 'public:*', PGFEED_ALLOW_USER: 'user:{user}' };

/** The checks every front server must pass; headers(user) logs that user in. */
function frontServerSuite(name, start, headers, { loginEverywhere = false } = {}) {
  describe(name, () => {
    let server;
    const check = checkWith(() => server);
    before(async () => {
      server = await start();
      await publish(`user:${alice}`, 'note', { to: 'alice' });
      await publish(`user:${bob}`, 'note', { to: 'bob' });
    });
    after(async () => {
      const logs = server ? server.logsSince() : '';
      await server?.stop();
      assert.deepEqual(crashLines(logs), [], 'pgfeed crashed or leaked');
    });

    check('alice reads user:alice and gets 403 on user:bob in every form of request', async () => {
      await assertReadMatrix(server.base, { mine: `user:${alice}`, theirs: `user:${bob}`, headers: headers(alice) });
    });

    check('what alice reads is her own channel', async () => {
      const res = await request(server.base, `/feed/user:${alice}`, { headers: headers(alice) });
      assert.equal(res.status, 200);
      const to = new Set(res.json.events.map((e) => e.data.to));
      assert.deepEqual([...to], ['alice']); // each suite published one more of hers, never bob's
    });

    check('anonymous: public:* only; user channels are 401 with WWW-Authenticate', async () => {
      const open = await request(server.base, `/feed/public:${run}`);
      // Where the web server asks for a login on all of /feed, it answers first.
      assert.equal(open.status, loginEverywhere ? 401 : 200, open.body);
      const res = await request(server.base, `/feed/user:${alice}`);
      assert.equal(res.status, 401, res.body);
      assert.match(String(res.headers['www-authenticate']), loginEverywhere ? /^Basic/ : /^Bearer/);
    });

    check('/_metrics and /_health answer a loopback client', async () => {
      const m = await request(server.base, '/feed/_metrics', { headers: headers(alice) });
      assert.equal(m.status, 200, m.body);
      assert.match(m.body, /pgfeed_/);
    });
  });
}

let files;
let htpasswd;
let jwks;
let login;

before(async () => {
  files = readableDir('auth');
  htpasswd = writeHtpasswd(files, USERS);
  jwks = writeJwks(files);
  login = await startLoginEndpoint({ [`s-${alice}`]: alice, [`s-${bob}`]: bob });
});
after(async () => {
  await login?.close();
  files?.cleanup();
});

// Apache asks for the login on all of /feed; without one the answer is Apache's 401.
frontServerSuite(
  'Apache mod_fcgid with Basic login (apache/pgfeed-fcgid.conf, PGFEED_AUTH_USERFILE)',
  () => startApache('fcgid', { defines: { ...RULES, PGFEED_AUTH_USERFILE: htpasswd } }),
  (user) => ({ Authorization: basic(user, USERS[user]) }),
  { loginEverywhere: true },
);

frontServerSuite(
  'lighttpd with mod_auth (apache/lighttpd-pgfeed.conf)',
  () => startLighttpd({ env: { ...RULES, PGFEED_AUTH_USERFILE: htpasswd } }),
  (user) => ({ Authorization: basic(user, USERS[user]) }),
);

frontServerSuite(
  'nginx with auth_request (apache/nginx-pgfeed.conf, $pgfeed_auth_url)',
  () => startNginx({ authUrl: login.url, daemonEnv: RULES }),
  (user) => ({ Cookie: `session=s-${user}` }),
);

frontServerSuite(
  'Apache CGI with a token cookie (apache/pgfeed-cgi.conf, PGFEED_TOKEN_KEYS)',
  () => startApache('cgi', { defines: { ...RULES, PGFEED_TOKEN_KEYS: jwks } }),
  (user) => ({ Cookie: `pgfeed_token=${mintToken({ sub: user })}` }),
);

describe('the front servers refuse bad logins before pgfeed', () => {
  let servers = [];
  before(async () => {
    servers = [
      await startApache('fcgid', { defines: { ...RULES, PGFEED_AUTH_USERFILE: htpasswd } }),
      await startLighttpd({ env: { ...RULES, PGFEED_AUTH_USERFILE: htpasswd } }),
    ];
  });
  after(async () => {
    for (const s of servers) await s.stop();
  });
  checkWith(() => servers[0])('a wrong password is 401 from Apache and from lighttpd', async () => {
    for (const s of servers) {
      const res = await request(s.base, `/feed/user:${alice}`, { headers: { Authorization: basic(alice, 'wrong') } });
      assert.equal(res.status, 401, `${s.kind}: ${res.body}`);
    }
  });
});

describe('nginx auth_request: an unknown session is refused, the admin routes stay local', () => {
  let server;
  const check = checkWith(() => server);
  before(async () => {
    server = await startNginx({ authUrl: login.url, daemonEnv: RULES });
  });
  after(async () => server?.stop());

  check('an unknown session cookie is refused by the login endpoint', async () => {
    const res = await request(server.base, `/feed/user:${alice}`, { headers: { Cookie: 'session=forged' } });
    assert.equal(res.status, 401);
  });

  check('a REMOTE_USER cannot be smuggled in as a header', async () => {
    const res = await request(server.base, `/feed/user:${alice}`, { headers: { 'Remote-User': alice, 'X-Remote-User': alice } });
    assert.equal(res.status, 401, res.body);
  });

  check('/_metrics from outside this host is refused (REMOTE_ADDR not loopback)', async () => {
    for (const route of ['/_metrics', '/_health']) {
      const outside = await fcgiGet(server.daemon.socket, route, { params: { REMOTE_ADDR: '192.0.2.10' } }).done;
      assert.equal(outside.status, 403, `${route}: ${outside.body}`);
      assert.match(outside.body, /--admin-allow/);
      const inside = await fcgiGet(server.daemon.socket, route, { params: { REMOTE_ADDR: '127.0.0.1' } }).done;
      assert.ok([200, 503].includes(inside.status), `${route} from loopback: ${inside.status}`);
    }
  });
});
