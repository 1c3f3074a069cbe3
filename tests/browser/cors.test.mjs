// Cross-origin reads in headless Chromium (README "Authorization", CORS): a
// page served from one origin (a small Node server on its own port) follows
// feeds served by nginx + pgfeed (apache/nginx-pgfeed.conf) on another.
// With --cors-origin naming the page's origin: fetch reads a public feed and
// its ETag, fetch with Authorization: Bearer passes the preflight and reads
// the user's channel, EventSource streams a public feed, and EventSource
// withCredentials streams the user's channel with the token cookie. Without
// --cors-origin the same page gets nothing: the browser blocks every one.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';

import { mintToken, readableDir, writeJwks } from '../e2e/lib/auth.mjs';
import { publish, unique } from '../e2e/lib/pg.mjs';
import { crashLines, startNginx } from '../e2e/lib/servers.mjs';

const { chromium } = await import('playwright-core').catch((err) => {
  throw new Error(`browser: cannot load playwright-core; run: npm ci --prefix tests (${err.message})`);
});
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'];

const run = unique('cors').replaceAll('_', '-');
const alice = `alice-${run}`;
const PUBLIC = `public:${run}`;
const MINE = `user:${alice}`;

// The page: runs each transport against the feed origin and reports what it got.
const PAGE = `<!doctype html><meta charset="utf-8"><title>cors</title>
<script type="module">
window.tryAll = async (feed, publicCh, mine, token) => {
  const out = {};
  const attempt = async (name, fn) => {
    try { out[name] = await fn(); } catch (err) { out[name] = 'error: ' + err.message; }
  };
  await attempt('fetch', async () => {
    const res = await fetch(feed + '/feed/' + publicCh);
    return { status: res.status, etag: res.headers.get('ETag'), events: (await res.json()).events.length };
  });
  await attempt('fetchBearer', async () => {
    const res = await fetch(feed + '/feed/' + mine, { headers: { Authorization: 'Bearer ' + token } });
    return { status: res.status, events: (await res.json()).events.length };
  });
  const stream = (url, options) => new Promise((resolve, reject) => {
    const es = new EventSource(url, options);
    const timer = setTimeout(() => { es.close(); reject(new Error('no event within 5 s')); }, 5000);
    es.onmessage = (e) => { clearTimeout(timer); es.close(); resolve(JSON.parse(e.data).version); };
    es.onerror = () => { clearTimeout(timer); es.close(); reject(new Error('EventSource failed')); };
  });
  await attempt('eventSource', () => stream(feed + '/feed/' + publicCh + '?since=0'));
  document.cookie = 'pgfeed_token=' + token + '; path=/';
  await attempt('eventSourceCookie', () => stream(feed + '/feed/' + mine + '?since=0', { withCredentials: true }));
  return out;
};
</script>`;

let pageServer;
let pageOrigin;
let files;
let browser;
const servers = [];

async function startFeed(cors) {
  const server = await startNginx({
    daemonEnv: {
      PGFEED_ALLOW: 'public:*',
      PGFEED_ALLOW_USER: 'user:{user}',
      PGFEED_TOKEN_KEYS: writeJwks(files),
      PGFEED_TOKEN_COOKIE: 'pgfeed_token',
      ...(cors ? { PGFEED_CORS_ORIGIN: pageOrigin } : {}),
    },
  });
  servers.push(server);
  return server;
}

async function runPage(feed) {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto(`${pageOrigin}/`);
  const token = mintToken({ sub: alice });
  const out = await page.evaluate(([f, p, m, t]) => window.tryAll(f, p, m, t), [feed.base, PUBLIC, MINE, token]);
  await page.close();
  assert.deepEqual(errors, []);
  return out;
}

before(async () => {
  files = readableDir('cors');
  pageServer = http.createServer((req, res) => res.writeHead(200, { 'Content-Type': 'text/html' }).end(PAGE));
  await new Promise((resolve) => pageServer.listen(0, '127.0.0.1', resolve));
  // Another port is another origin; the same host keeps it one site, so the cookie flows.
  pageOrigin = `http://127.0.0.1:${pageServer.address().port}`;
  await publish(PUBLIC, 'note', { n: 1 });
  await publish(MINE, 'note', { n: 1 });
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium', args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
  const logs = servers.map((s) => s.logsSince()).join('\n');
  for (const s of servers) await s.stop();
  await new Promise((resolve) => pageServer?.close(resolve));
  files?.cleanup();
  assert.deepEqual(crashLines(logs), []);
});

describe('a page on another origin', () => {
  it('follows feeds with fetch and EventSource when --cors-origin names it', async () => {
    const feed = await startFeed(true);
    const out = await runPage(feed);
    assert.deepEqual(out.fetch, { status: 200, etag: '"1"', events: 1 }, JSON.stringify(out));
    assert.deepEqual(out.fetchBearer, { status: 200, events: 1 }, JSON.stringify(out));
    assert.equal(out.eventSource, 1, JSON.stringify(out));
    assert.equal(out.eventSourceCookie, 1, JSON.stringify(out));
  });

  it('gets nothing without --cors-origin: the browser blocks each transport', async () => {
    const feed = await startFeed(false);
    const out = await runPage(feed);
    for (const name of ['fetch', 'fetchBearer', 'eventSource', 'eventSourceCookie']) {
      assert.match(String(out[name]), /^error: /, `${name}: ${JSON.stringify(out[name])}`);
    }
  });
});
