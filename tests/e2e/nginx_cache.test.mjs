// nginx with the shared cache of apache/nginx-pgfeed-cache.conf in front of
// one pgfeed daemon whose --cache-public lists the public channel: thousands
// of long polls for one cursor reach pgfeed as one request per round, every
// client gets every event, nobody loops on a cached empty answer, and a
// channel pgfeed does not list is never answered from the cache.
import assert from 'node:assert/strict';
import http from 'node:http';
import { before, describe } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { checkWith } from './lib/foundation.mjs';
import { client } from './lib/http.mjs';
import { metrics } from './lib/metrics.mjs';
import { publish, unique } from './lib/pg.mjs';
import { serverFor, startNginx } from './lib/servers.mjs';

const CLIENTS = 2000;
const WAIT = 3; // the empty round times out after this
const PUBLIC = unique('e2e_pub');
const PRIVATE = unique('e2e_priv');

/** The long polls pgfeed itself has been asked for. */
async function longPolls(base) {
  return (await metrics(base)).get('pgfeed_requests_total{transport="long_poll"}') ?? 0;
}
async function polls(base) {
  return (await metrics(base)).get('pgfeed_requests_total{transport="poll"}') ?? 0;
}

/** n concurrent GETs of one path on their own keep-alive connections. */
function getAll(base, paths, timeoutMs = 60000) {
  const url = new URL(base);
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
  const one = (path) =>
    new Promise((resolve, reject) => {
      const req = http.get({ host: url.hostname, port: url.port, path, agent }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          resolve({ path, status: res.statusCode, headers: res.headers, body, json: JSON.parse(body) });
        });
        res.on('error', reject);
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`${path}: no answer in ${timeoutMs} ms`)));
      req.on('error', reject);
    });
  return Promise.all(paths.map(one)).finally(() => agent.destroy());
}

/** The path a Link: <?...>; rel="next" names, resolved against the request's path. */
function nextPath(res) {
  const m = /^<([^>]*)>; rel="next"$/.exec(res.headers.link ?? '');
  assert.ok(m, `${res.path}: Link header ${res.headers.link}`);
  assert.equal(res.json.next, m[1], `${res.path}: body "next" and Link agree`);
  const u = new URL(m[1], `http://x${res.path}`);
  return u.pathname + u.search;
}

describe('nginx shared cache (apache/nginx-pgfeed-cache.conf)', () => {
  const server = serverFor(() =>
    startNginx({
      snippet: 'nginx-pgfeed-cache.conf',
      daemonEnv: { PGFEED_CACHE_PUBLIC: PUBLIC, PGFEED_MAX_WAIT: '30', PGFEED_MAX_HELD: String(CLIENTS + 100) },
      // What the snippet asks for at the http level. The map is deliberately
      // wider than pgfeed's list (it lets the private channel through the
      // cache too): pgfeed's own Cache-Control must still keep it out.
      http: (root) => [
        `fastcgi_cache_path ${root}/nginx/cache levels=1:2 keys_zone=pgfeed:10m max_size=64m inactive=10m use_temp_path=off;`,
        'map $uri $pgfeed_private {',
        '    default 1;',
        `    ~^/feed/(${PUBLIC}|${PRIVATE})$ 0;`,
        '}',
      ],
    }),
  );
  const check = checkWith(() => server());
  let base;
  before(() => {
    base = server().base;
  });

  check(`${CLIENTS} long polls for one cursor: one pgfeed request per round, every event to every client, no loop on an empty answer`, async () => {
    await publish(PUBLIC, 'first', {});
    let path = `/feed/${PUBLIC}?since=1&wait=${WAIT}`;
    const before = await longPolls(base);
    // Two rounds with an event each, then an empty one.
    for (let round = 1; round <= 3; round++) {
      const answers = getAll(base, Array.from({ length: CLIENTS }, () => path));
      // Until pgfeed holds the one request the cache lets through, and the others reached nginx.
      const deadline = Date.now() + 20000;
      while ((await metrics(base)).get('pgfeed_held_requests') < 1 && Date.now() < deadline) await sleep(50);
      await sleep(1000);
      if (round < 3) await publish(PUBLIC, `round${round}`, { round });
      const got = await answers;
      const nexts = new Set();
      for (const res of got) {
        assert.equal(res.status, 200, `${res.path}: ${res.body.slice(0, 200)}`);
        assert.match(res.headers['cache-control'], /^public, max-age=\d+$/);
        assert.equal(res.headers.vary, 'Accept');
        const versions = res.json.events.map((e) => e.version);
        assert.deepEqual(versions, round < 3 ? [round + 1] : [], `${res.path}: events of round ${round}`);
        const next = nextPath(res);
        assert.notEqual(next, res.path, `${res.path}: the next URL must differ (an empty answer too)`);
        nexts.add(next);
      }
      assert.equal(nexts.size, 1, `every client got the same next URL: ${[...nexts].slice(0, 3)}`);
      path = [...nexts][0];
      if (round === 3) assert.match(path, /round=1/, 'after an empty answer the round goes up');
    }
    const reached = (await longPolls(base)) - before;
    // One per round per 1,024 waiters: nginx counts a cache node's lookups in a
    // 10-bit field (ngx_http_file_cache_node_t.uses), so the 1,024th request
    // for a key that is not stored yet sees uses = 0 < fastcgi_cache_min_uses,
    // is "scarce", and goes to pgfeed past the lock (measured: 300 clients, 1
    // per round; 2,000 clients, 2 per round, the second from the ~1,024th).
    const perRound = Math.ceil(CLIENTS / 1024);
    assert.equal(reached, 3 * perRound, `${CLIENTS} clients × 3 rounds reached pgfeed as ${reached} long polls`);
    console.log(`# ${CLIENTS} clients × 3 rounds reached pgfeed as ${reached} long polls`);

    // The cached empty answer is served to a late client, and names the next round, not itself.
    const late = await client(base).get(`/feed/${PUBLIC}?since=3&wait=${WAIT}`);
    assert.equal(late.headers['x-cache-status'], 'HIT');
    assert.equal(late.json.events.length, 0);
    assert.match(late.json.next, /round=1/);
  });

  check('a channel pgfeed does not list is never served from the shared cache', async () => {
    await publish(PRIVATE, 'secret', { s: 1 });
    const before = await polls(base);
    const http1 = client(base);
    for (let i = 0; i < 3; i++) {
      const res = await http1.get(`/feed/${PRIVATE}?since=0`);
      assert.equal(res.status, 200);
      assert.equal(res.headers['cache-control'], 'no-cache');
      assert.notEqual(res.headers['x-cache-status'], 'HIT', `answer ${i} came from the cache`);
      assert.equal(res.headers.link, undefined);
    }
    assert.equal((await polls(base)) - before, 3, 'each request reached pgfeed');
    // Errors and streams are never kept either.
    const bad = await http1.get(`/feed/${PUBLIC}?since=abc`);
    assert.equal(bad.status, 400);
    assert.equal(bad.headers['cache-control'], 'no-store');
  });
});
