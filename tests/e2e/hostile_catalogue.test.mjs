// A catalogue of hostile requests (issue 9), table-driven, through real front
// servers (lighttpd, Apache mod_proxy_fcgi, Apache CGI) and as raw FastCGI
// straight to `pgfeed --listen`. Each case asserts its exact status and a
// problem+json body (or, for raw FastCGI, that pgfeed closes the connection);
// where the front server refuses the request itself, the case says which
// status that server gives, and pgfeed never sees it. After the whole
// catalogue the process is alive, a normal poll answers at once, and the logs
// show no crash (under the sanitizer build: no leak, reported at exit).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { begin, encodeParams, getParams, RawConn, record, requestBytes, T } from './lib/fcgi_raw.mjs';
import { assertFeed, assertProblem } from './lib/foundation.mjs';
import { client } from './lib/http.mjs';
import { publish, unique } from './lib/pg.mjs';
import { crashLines, makeRoot, startApache, startApacheProxy, startDaemon, startLighttpd } from './lib/servers.mjs';

const ch = unique('cat');
const other = `${ch}.b`;
const names = (n) => Array.from({ length: n }, (_, i) => `${ch}.m${i}`);

/*
 * HTTP cases: [what, path, {status, method, headers, body, json, front}].
 * status: pgfeed's answer (problem+json when >= 400, a feed when 200/304).
 * front: {server kind prefix: status} where that front server answers itself.
 */
const HTTP_CASES = [
  // channel names
  ['a space in the name', '/feed/bad%20name', { status: 400 }],
  ['a leading -', '/feed/-x', { status: 400 }],
  ['a leading _ (reserved for routes)', '/feed/_x', { status: 404 }],
  ['129 characters', `/feed/${'a'.repeat(129)}`, { status: 400 }],
  ['128 characters is fine', `/feed/${'a'.repeat(128)}`, { status: 200 }],
  ['2,000 characters of PATH_INFO', `/feed/${'a'.repeat(2000)}`, { status: 400 }],
  ['9,000 characters of PATH_INFO', `/feed/${'a'.repeat(9000)}`, { status: 0, front: { apache: 414, lighttpd: 431 } }],
  ['a * in the name', '/feed/a*b', { status: 400 }],
  ['UTF-8 in the name', '/feed/%C3%A9t%C3%A9', { status: 400 }],
  ['bytes that are not UTF-8', '/feed/%FF%FE', { status: 400, front: { lighttpd: 400 } }],
  ['an encoded NUL', '/feed/a%00b', { status: 0, front: { apache: 404, lighttpd: 400 } }],
  ['.. in the name', '/feed/a..b', { status: 200 }],
  ['a path climbing out of /feed with ..', '/feed/x/../../etc', { status: 0, front: { apache: 404, lighttpd: 404 } }],
  ['an encoded slash', '/feed/a%2Fb', { status: 400, front: { apache: 404 } }],
  ['a trailing slash', `/feed/${ch}/`, { status: 400 }],
  ['two path segments', `/feed/${ch}/more`, { status: 400 }],
  ['bad percent-encoding in the path', '/feed/%G1', { status: 0, front: { apache: 400, lighttpd: 400 } }],
  ['no channel at all', '/feed/', { status: 400 }],
  ['an unknown route', '/feed/_nope', { status: 404 }],
  ['below a route', '/feed/_health/x', { status: 404 }],
  // numbers
  ['since=-1', `/feed/${ch}?since=-1`, { status: 400 }],
  ['since=abc', `/feed/${ch}?since=abc`, { status: 400 }],
  ['since=1.5', `/feed/${ch}?since=1.5`, { status: 400 }],
  ['since=+1', `/feed/${ch}?since=%2B1`, { status: 400 }],
  ['since beyond bigint', `/feed/${ch}?since=9223372036854775808`, { status: 400 }],
  ['since of 40 digits', `/feed/${ch}?since=${'9'.repeat(40)}`, { status: 400 }],
  ['since empty', `/feed/${ch}?since=`, { status: 400 }],
  ['since=now', `/feed/${ch}?since=now`, { status: 200 }],
  ['limit=0', `/feed/${ch}?limit=0`, { status: 400 }],
  ['limit=-1', `/feed/${ch}?limit=-1`, { status: 400 }],
  ['limit=1001', `/feed/${ch}?limit=1001`, { status: 400 }],
  ['limit beyond int64', `/feed/${ch}?limit=99999999999999999999`, { status: 400 }],
  ['limit empty', `/feed/${ch}?limit=`, { status: 400 }],
  ['wait=-1', `/feed/${ch}?wait=-1`, { status: 400 }],
  ['wait=abc', `/feed/${ch}?wait=abc`, { status: 400 }],
  ['wait beyond int64 is clamped to --max-wait (and events are there)', `/feed/${ch}?since=0&wait=99999999999999999999`, { status: 200 }],
  // empty or repeated parameters
  ['since twice', `/feed/${ch}?since=1&since=2`, { status: 400 }],
  ['limit twice', `/feed/${ch}?limit=1&limit=2`, { status: 400 }],
  ['wait twice', `/feed/${ch}?wait=1&wait=2`, { status: 400 }],
  ['empty parameters', `/feed/${ch}?&&=&`, { status: 200 }],
  ['an unknown parameter', `/feed/${ch}?_=1700000000`, { status: 200 }],
  ['a lone % at the end', `/feed/${ch}?since=1%`, { status: 400 }],
  ['%G1 in the query', `/feed/${ch}?since=%G1`, { status: 400 }],
  ['an encoded NUL in the query', `/feed/${ch}?since=%00`, { status: 400, front: { lighttpd: 400 } }],
  ['a query over --max-query', `/feed/${ch}?${'x'.repeat(6000)}=1`, { status: 414 }],
  // several channels
  ['two channel= parameters', `/feed/?channel=${ch}&channel=${other}`, { status: 200 }],
  ['a channel named twice', `/feed/?channel=${ch}&channel=${ch}`, { status: 400 }],
  ['an empty channel=', '/feed/?channel=', { status: 400 }],
  ['17 channels (over --max-channels 16)', `/feed/?${names(17).map((n) => `channel=${n}`).join('&')}`, { status: 400 }],
  ['a path channel plus channel=', `/feed/${ch}?channel=${other}`, { status: 400 }],
  ['a cursor naming 100 channels', `/feed/${ch}?since=${names(100).map((n) => `${n}=1`).join(',')}`, { status: 200 }],
  ['a cursor naming one channel twice', `/feed/?channel=${ch}&channel=${other}&since=${ch}=1,${ch}=2`, { status: 400 }],
  ['a cursor with an empty entry', `/feed/?channel=${ch}&channel=${other}&since=${ch}=1,,${other}=1`, { status: 400 }],
  ['a cursor entry without a version', `/feed/?channel=${ch}&channel=${other}&since=${ch}=`, { status: 400 }],
  // If-None-Match
  ['If-None-Match: *', `/feed/${ch}`, { status: 200, headers: { 'If-None-Match': '*' } }],
  ['If-None-Match: W/"1" (weak, current)', `/feed/${ch}`, { status: 304, headers: { 'If-None-Match': 'W/"1"' } }],
  ['If-None-Match: a list holding the current tag (RFC 9110: any tag counts)', `/feed/${ch}`, { status: 304, headers: { 'If-None-Match': '"0", "1"' } }],
  ['If-None-Match: a list led by the current tag', `/feed/${ch}`, { status: 304, headers: { 'If-None-Match': '"1", "0"' } }],
  ['If-None-Match: unterminated', `/feed/${ch}`, { status: 200, headers: { 'If-None-Match': '"1' } }],
  ['If-None-Match: a negative version', `/feed/${ch}`, { status: 200, headers: { 'If-None-Match': '"-1"' } }],
  ['If-None-Match: 64 KB', `/feed/${ch}`, { status: 0, headers: { 'If-None-Match': `"${'1'.repeat(65536)}"` }, front: { apache: 400, lighttpd: 431 } }],
  // Last-Event-ID (SSE); a valid one would open a stream
  ['Last-Event-ID: -1', `/feed/${ch}`, { status: 400, headers: { Accept: 'text/event-stream', 'Last-Event-ID': '-1' } }],
  ['Last-Event-ID: abc', `/feed/${ch}`, { status: 400, headers: { Accept: 'text/event-stream', 'Last-Event-ID': 'abc' } }],
  ['Last-Event-ID beyond bigint', `/feed/${ch}`, { status: 400, headers: { Accept: 'text/event-stream', 'Last-Event-ID': '99999999999999999999' } }],
  ['Last-Event-ID on a poll is not a cursor', `/feed/${ch}`, { status: 200, headers: { 'Last-Event-ID': 'abc' } }],
  // methods
  ...['POST', 'PUT', 'DELETE', 'PATCH', 'PROPFIND'].map((method) => [
    `${method} (publishing off)`,
    `/feed/${ch}`,
    { status: 405, method, headers: { 'Content-Type': 'application/json' }, body: '{"type":"x"}' },
  ]),
  // OPTIONS is for CORS preflights, refused where no --cors-origin admits the page.
  ['OPTIONS without --cors-origin', `/feed/${ch}`, { status: 403, method: 'OPTIONS', headers: { Origin: 'https://elsewhere.example', 'Access-Control-Request-Method': 'GET' } }],
  ['OPTIONS that is no preflight', `/feed/${ch}`, { status: 403, method: 'OPTIONS' }],
  ['HEAD', `/feed/${ch}`, { status: 200, method: 'HEAD' }],
  ['a GET with a body', `/feed/${ch}`, { status: 200, headers: { 'Content-Type': 'text/plain' }, body: 'x'.repeat(1000) }],
];

/** Sends one catalogue case and checks its answer. */
async function checkHttp(http, kind, [what, reqPath, c]) {
  const res = await http.send(c.method ?? 'GET', reqPath, { headers: c.headers, body: c.body, timeoutMs: 10000 });
  const front = Object.entries(c.front ?? {}).find(([k]) => kind.startsWith(k));
  const where = `${kind}: ${what}`;
  if (front) {
    assert.equal(res.status, front[1], `${where}: the front server's own answer (${res.status} ${res.body.slice(0, 200)})`);
    return;
  }
  assert.notEqual(c.status, 0, `${where}: expected the front server to refuse it, got ${res.status}`);
  if (c.status >= 400) {
    assertProblem(res, c.status, where);
  } else if (c.status === 304) {
    assert.equal(res.status, 304, `${where}: ${res.status} ${res.body.slice(0, 200)}`);
  } else if (c.method === 'HEAD') {
    assert.equal(res.status, 200, where);
    assert.equal(res.body, '', `${where}: no body`);
  } else {
    assert.equal(res.status, 200, `${where}: ${res.status} ${res.body.slice(0, 300)}`);
    assert.ok(res.json && Array.isArray(res.json.events ?? res.json.channels), `${where}: a feed answer: ${res.body.slice(0, 200)}`);
  }
}

/** After the catalogue: alive, a poll answers at once, nothing crashed. */
async function checkAfter(server, mark) {
  const started = Date.now();
  const res = await client(server.base).get(`/feed/${ch}`);
  assertFeed(res, ch, 'a normal poll after the catalogue');
  assert.ok(Date.now() - started < 500, `answered in ${Date.now() - started} ms`);
  assert.deepEqual(crashLines(server.logsSince(mark)), []);
}

const FRONTS = [
  ['lighttpd', () => startLighttpd()],
  ['apache proxy-fcgi', () => startApacheProxy()],
  ['apache cgi', () => startApache('cgi')],
];

before(async () => {
  await publish(ch, 'a', { n: 1 });
  await publish(other, 'a', { n: 1 });
});

for (const [kind, start] of FRONTS) {
  describe(`hostile requests through ${kind}`, () => {
    let server;
    let mark;
    before(async () => {
      server = await start();
      mark = server.mark();
    });
    after(async () => {
      await server.stop();
      // A sanitizer build reports leaks when pgfeed exits: after stop().
      const crashes = crashLines(server.logsSince(mark));
      server.cleanup();
      assert.deepEqual(crashes, [], `${kind}: no crash or leak in the logs`);
    });
    test(`${HTTP_CASES.length} cases, each its exact status and problem+json`, async () => {
      const http = client(server.base);
      const failures = [];
      for (const c of HTTP_CASES) {
        try {
          await checkHttp(http, kind, c);
        } catch (err) {
          failures.push(err.message.split('\n')[0]);
        }
      }
      assert.deepEqual(failures, []);
      await checkAfter(server, mark);
    });
  });
}

/*
 * Raw FastCGI cases: [what, bytes or (conn) => Promise, expect] where expect
 * is 'close' (pgfeed closes without answering) or a status for request id 1.
 */
const P = (params) => record(T.PARAMS, encodeParams(params));
const GET = getParams(`/${ch}`);
const RAW_CASES = [
  ['three bytes of a header, then nothing', Buffer.from([1, 1, 0]), 'timeout'],
  ['a version 2 record', Buffer.from([2, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]), 'close'],
  ['BEGIN_REQUEST of 7 bytes', record(T.BEGIN_REQUEST, Buffer.alloc(7), 1), 'close'],
  ['BEGIN_REQUEST of 9 bytes', record(T.BEGIN_REQUEST, Buffer.from([0, 1, 0, 0, 0, 0, 0, 0, 0]), 1), 'close'],
  ['BEGIN_REQUEST twice for one id', Buffer.concat([begin(1), begin(1)]), 'close'],
  ['a name length running past the record', Buffer.concat([begin(1), record(T.PARAMS, Buffer.from([10, 1, 65])), record(T.PARAMS)]), 'close'],
  ['a four-byte length of 2 GB', Buffer.concat([begin(1), record(T.PARAMS, Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 65, 66])), record(T.PARAMS)]), 'close'],
  ['a NUL inside a param value', Buffer.concat([begin(1), P({ ...GET, QUERY_STRING: 'since=1\0&limit=1' }), record(T.PARAMS)]), 'close'],
  ['an empty param name', Buffer.concat([begin(1), record(T.PARAMS, Buffer.from([0, 1, 65])), record(T.PARAMS)]), 'close'],
  ['STDIN before the params end', Buffer.concat([begin(1), P(GET), record(T.STDIN, Buffer.from('x'))]), 'close'],
  ['PARAMS after the params ended', Buffer.concat([begin(1), P({ ...GET, CONTENT_LENGTH: '5' }), record(T.PARAMS), record(T.PARAMS, Buffer.from([1, 1, 65, 66]))]), 'close'],
  ['a STDOUT record sent to the application', record(T.STDOUT, Buffer.from('x'), 1), 'close'],
  ['an END_REQUEST record sent to the application', record(T.END_REQUEST, Buffer.alloc(8), 1), 'close'],
  ['a record of type 200 for a request', record(200, Buffer.alloc(1), 1), 'close'],
  ['a malformed GET_VALUES', record(T.GET_VALUES, Buffer.from([5, 0, 65]), 0), 'close'],
  ['params over --max-params in many records', Buffer.concat([begin(1), ...Array.from({ length: 10 }, () => record(T.PARAMS, Buffer.alloc(60000, 65)))]), 'close'],
  ['one 64 KB PARAMS record with 255 bytes of padding', Buffer.concat([begin(1), record(T.PARAMS, Buffer.alloc(65535, 65), 1, 255)]), 'close'],
  ['a request with padding on every record', Buffer.concat([record(T.BEGIN_REQUEST, Buffer.from([0, 1, 0, 0, 0, 0, 0, 0]), 1, 255), record(T.PARAMS, encodeParams(GET), 1, 7), record(T.PARAMS, Buffer.alloc(0), 1, 255), record(T.STDIN, Buffer.alloc(0), 1, 3)]), 200],
  ['request id 65535', requestBytes(65535, GET), 'id65535'],
  ['a huge CONTENT_LENGTH on a GET', requestBytes(1, { ...GET, CONTENT_LENGTH: '99999999999999999999999' }), 200],
  ['CONTENT_LENGTH -1', requestBytes(1, { ...GET, CONTENT_LENGTH: '-1' }), 200],
  ['a body longer than its CONTENT_LENGTH', requestBytes(1, { ...GET, CONTENT_LENGTH: '3' }, { body: 'x'.repeat(10000) }), 200],
  ['a DATA record is ignored', Buffer.concat([begin(1), record(T.DATA, Buffer.from('x'), 1), P(GET), record(T.PARAMS), record(T.STDIN)]), 200],
  ['records for another request id are skipped', Buffer.concat([record(T.STDIN, Buffer.from('x'), 9), requestBytes(1, GET)]), 200],
  ['an authorizer BEGIN without KEEP_CONN', begin(1, { role: 2 }), 'close'],
  ['a filter BEGIN', begin(1, { role: 3 }), 'close'],
  ['ABORT_REQUEST before the params end', Buffer.concat([begin(1), P(GET), record(T.ABORT_REQUEST, Buffer.alloc(0), 1)]), 'close'],
  ['no REQUEST_METHOD at all', requestBytes(1, { PATH_INFO: `/${ch}` }), 405],
  ['no PATH_INFO at all', requestBytes(1, { REQUEST_METHOD: 'GET' }), 400],
  ['a duplicated PATH_INFO (the first counts)', Buffer.concat([begin(1), record(T.PARAMS, Buffer.concat([encodeParams(GET), encodeParams({ PATH_INFO: '/_nope' })])), record(T.PARAMS), record(T.STDIN)]), 200],
];

describe('hostile FastCGI straight to --listen', () => {
  let d;
  let root;
  const log = () => fs.readFileSync(path.join(root, 'stderr.log'), 'utf8');
  before(async () => {
    root = makeRoot('catalogue');
    d = await startDaemon(root, { env: { PGFEED_REQUEST_TIMEOUT: '1' } });
  });
  after(async () => {
    process.kill(d.pid, 'SIGTERM');
    for (let i = 0; i < 50; i++) {
      try {
        process.kill(d.pid, 0);
      } catch {
        break;
      }
      await sleep(100);
    }
    const crashes = crashLines(log());
    fs.rmSync(root, { recursive: true, force: true });
    assert.deepEqual(crashes, [], 'no crash or leak in the log (reported at exit)');
  });

  for (const [what, bytes, expect] of RAW_CASES) {
    test(what, async () => {
      const c = new RawConn(d.socket);
      await c.send(bytes);
      if (expect === 'close' || expect === 'timeout') {
        const started = Date.now();
        assert.ok(await c.closesWithin(3000), 'pgfeed closed the connection');
        const ms = Date.now() - started;
        if (expect === 'close') assert.ok(ms < 800, `at once, not at the deadline (${ms} ms)`);
        assert.equal(c.records.filter((r) => r.type === T.STDOUT).length, 0, 'no answer');
      } else {
        const id = expect === 'id65535' ? 65535 : 1;
        const a = await c.answer(id);
        assert.ok(a, 'answered');
        const status = expect === 'id65535' ? 200 : expect;
        assert.equal(a.status, status, a.body);
        if (status >= 400) assert.match(a.headers['content-type'], /problem\+json/);
      }
      c.destroy();
    });
  }

  test('slow params (a byte every 20 ms, complete within --request-timeout) are answered', async () => {
    const c = new RawConn(d.socket);
    const bytes = requestBytes(1, { REQUEST_METHOD: 'GET', PATH_INFO: `/${ch}` });
    for (let at = 0; at < bytes.length; at++) {
      await c.send(bytes.subarray(at, at + 1));
      await sleep(bytes.length > 40 ? 5 : 20);
    }
    assert.equal((await c.answer(1))?.status, 200);
    c.destroy();
  });

  test('slow params past --request-timeout are closed', async () => {
    const c = new RawConn(d.socket);
    const bytes = requestBytes(1, GET);
    let at = 0;
    while (!c.isClosed && at < bytes.length) {
      await c.send(bytes.subarray(at, at + 1));
      at++;
      await sleep(100);
    }
    assert.ok(c.isClosed, 'closed before the request was complete');
  });

  test('a slow body past --request-timeout is closed', async () => {
    const c = new RawConn(d.socket);
    const post = { ...GET, REQUEST_METHOD: 'POST', CONTENT_LENGTH: '100', CONTENT_TYPE: 'application/json' };
    await c.send(Buffer.concat([begin(1), P(post), record(T.PARAMS)]));
    for (let i = 0; i < 30 && !c.isClosed; i++) {
      await c.send(record(T.STDIN, Buffer.from('x')));
      await sleep(100);
    }
    assert.ok(c.isClosed, 'closed');
  });

  test('2,000 idle connections: a poll still answers at once, and they are closed at the deadline', async (t) => {
    const idle = Array.from({ length: 2000 }, () => new RawConn(d.socket));
    await Promise.all(idle.map((c) => c.connected.catch(() => {})));
    const started = process.hrtime.bigint();
    const c = new RawConn(d.socket);
    await c.send(requestBytes(1, GET));
    const a = await c.answer(1);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    t.diagnostic(`poll beside 2,000 idle connections: ${ms.toFixed(1)} ms`);
    assert.equal(a?.status, 200);
    assert.ok(ms < 200, `${ms} ms`);
    c.destroy();
    await sleep(2500);
    assert.equal(idle.filter((x) => !x.isClosed).length, 0, 'every idle connection closed at --request-timeout');
  });

  test('afterwards: alive, a normal poll answers at once, nothing crashed', async () => {
    process.kill(d.pid, 0);
    const c = new RawConn(d.socket);
    const started = Date.now();
    await c.send(requestBytes(1, GET));
    const a = await c.answer(1);
    assert.equal(a?.status, 200);
    assert.deepEqual(a.json.events.map((e) => e.version), [1]);
    assert.ok(Date.now() - started < 500);
    c.destroy();
    assert.deepEqual(crashLines(log()), []);
  });
});
