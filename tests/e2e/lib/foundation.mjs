// foundation — the HTTP contract of a feed, checked through one real server.
//
// Each *.test.mjs file calls foundationSuite() with a function that starts its
// server; the same checks then run through mod_fcgid, CGI, mod_proxy_fcgi,
// lighttpd and nginx. Events are published with SQL and read over HTTP.
// Every channel and table name is unique to the run, so test files can share
// the database and run at the same time.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';

import { client, openStream } from './http.mjs';
import { lit, publish, publishMany, sql, unique } from './pg.mjs';
import { crashLines, serverFor } from './servers.mjs';

/**
 * Registers `it` whose failure message carries what the server logged during
 * that test (pgfeed's stderr lands in those logs).
 */
export function checkWith(getServer) {
  return (name, fn, options = {}) =>
    it(name, options, async (t) => {
      const server = getServer();
      const mark = server.mark();
      try {
        await fn(t);
      } catch (err) {
        const logs = server.logsSince(mark);
        if (!logs) throw err;
        // One message with the server's side of the story; the original stack
        // frames stay, without node printing the whole error twice.
        const wrapped = new Error(`${err.message}\n${logs}`);
        wrapped.stack = `${wrapped.message}\n${(err.stack ?? '').split('\n').filter((l) => /^\s+at /.test(l)).slice(0, 3).join('\n')}`;
        throw wrapped;
      }
    });
}

/** Asserts an RFC 9457 problem+json answer with this status. */
export function assertProblem(res, status, what) {
  const where = `${what}: got ${res.status} ${res.headers['content-type']} ${res.body.slice(0, 300)}`;
  assert.equal(res.status, status, where);
  assert.match(res.headers['content-type'] ?? '', /^application\/problem\+json/, where);
  assert.ok(res.json && typeof res.json === 'object', `${where}: body is not JSON`);
  assert.equal(res.json.status, status, `${where}: "status" member`);
  assert.equal(typeof res.json.title, 'string', `${where}: "title" member`);
  assert.ok(typeof res.json.detail === 'string' && res.json.detail.length > 0, `${where}: "detail" member`);
}

/** Asserts a 200 feed answer and returns its body. */
export function assertFeed(res, channel, what = 'feed answer') {
  const where = `${what}: got ${res.status} ${res.headers['content-type']} ${res.body.slice(0, 500)}`;
  assert.equal(res.status, 200, where);
  assert.match(res.headers['content-type'] ?? '', /^application\/json/, where);
  const body = res.json;
  assert.ok(body && typeof body === 'object', `${where}: body is not JSON`);
  assert.equal(body.channel, channel, `${where}: "channel"`);
  assert.equal(typeof body.head, 'number', `${where}: "head"`);
  assert.equal(typeof body.oldest, 'number', `${where}: "oldest"`);
  assert.ok(Array.isArray(body.events), `${where}: "events"`);
  assert.equal(typeof body.more, 'boolean', `${where}: "more"`);
  for (const e of body.events) {
    assert.deepEqual(Object.keys(e).sort(), ['channel', 'data', 'time', 'type', 'version'], `${where}: event members`);
    assert.equal(e.channel, channel, `${where}: event channel`);
    assert.ok(Number.isInteger(e.version) && e.version > 0, `${where}: event version`);
    assert.ok(!Number.isNaN(Date.parse(e.time)), `${where}: event time ${e.time}`);
  }
  assert.match(res.headers['cache-control'] ?? '', /no-cache/, `${where}: Cache-Control`);
  return body;
}

/** The ETag's cursor text without quotes. */
export function etag(res) {
  const tag = res.headers.etag;
  assert.match(tag ?? '', /^"[^"]*"$/, `ETag ${tag} is not a quoted entity-tag`);
  return tag.slice(1, -1);
}

/**
 * The foundation checks through one server.
 * @param {string} title
 * @param {() => Promise<import('./servers.mjs').Server>} start
 * @param {{longPoll?: boolean, maxWait?: number}} [options]
 *   maxWait: the PGFEED_MAX_WAIT the server was configured with (through its
 *   own variables), checked by a long poll that asks for more
 */
export function foundationSuite(title, start, options = {}) {
  let server;
  let http;
  const check = checkWith(() => server());
  const prefix = unique('e2e');
  const tables = [];

  describe(title, () => {
    server = serverFor(start, {
      onStop: async () => {
        for (const t of tables) await sql(`DROP TABLE IF EXISTS ${t}`).catch(() => {});
      },
    });
    before(() => {
      http = client(server().base);
    });

    check('events published in SQL come back in order, with their JSON and an ETag', async () => {
      const ch = `${prefix}.order`;
      await publishMany(ch, [
        { type: 'created', data: { id: 7, items: ['a', 'b'] } },
        { type: 'updated', data: { id: 7, note: 'naïve "quoted" \\ text' } },
        { type: 'deleted', data: { id: 7 } },
      ]);
      const res = await http.get(`/feed/${ch}`);
      const body = assertFeed(res, ch);
      assert.equal(body.head, 3);
      assert.equal(body.oldest, 1);
      assert.equal(body.more, false);
      assert.deepEqual(
        body.events.map((e) => [e.version, e.type, e.data]),
        [
          [1, 'created', { id: 7, items: ['a', 'b'] }],
          [2, 'updated', { id: 7, note: 'naïve "quoted" \\ text' }],
          [3, 'deleted', { id: 7 }],
        ],
      );
      assert.equal(etag(res), '3');

      const after1 = assertFeed(await http.get(`/feed/${ch}?since=1`), ch, 'since=1');
      assert.deepEqual(after1.events.map((e) => e.version), [2, 3]);
      const head = await http.send('HEAD', `/feed/${ch}`);
      assert.equal(head.status, 200, 'HEAD');
      assert.equal(head.body, '', 'HEAD has no body');
    });

    check('If-None-Match with the current ETag gets 304, then 200 once something is new', async () => {
      const ch = `${prefix}.etag`;
      await publishMany(ch, [{ type: 't', data: { n: 1 } }, { type: 't', data: { n: 2 } }]);
      const first = await http.get(`/feed/${ch}`);
      assertFeed(first, ch);
      const tag = first.headers.etag;
      assert.equal(tag, '"2"');

      const again = await http.get(`/feed/${ch}`, { 'If-None-Match': tag });
      assert.equal(again.status, 304, `repeat with If-None-Match ${tag}: ${again.status} ${again.body}`);
      assert.equal(again.body, '');
      assert.equal(again.headers.etag, tag, '304 repeats the ETag');

      const older = assertFeed(await http.get(`/feed/${ch}`, { 'If-None-Match': '"1"' }), ch, 'If-None-Match "1"');
      assert.deepEqual(older.events.map((e) => e.version), [2], 'If-None-Match is the cursor when since= is absent');

      await publish(ch, 't', { n: 3 });
      // wait=: pgfeed may hear the NOTIFY a moment after the commit; a held
      // request answers as soon as it does.
      const fresh = await http.get(`/feed/${ch}?wait=5`, { 'If-None-Match': tag });
      const body = assertFeed(fresh, ch, 'after a new event');
      assert.deepEqual(body.events.map((e) => [e.version, e.data.n]), [[3, 3]]);
      assert.equal(fresh.headers.etag, '"3"');
    });

    check('since=now starts at the head and then sees only newer events', async () => {
      const ch = `${prefix}.now`;
      await publishMany(ch, [{ type: 'old', data: {} }, { type: 'old', data: {} }]);
      const now = await http.get(`/feed/${ch}?since=now`);
      const body = assertFeed(now, ch, 'since=now');
      assert.deepEqual(body.events, []);
      assert.equal(body.head, 2);
      assert.equal(etag(now), '2');

      await publish(ch, 'new', { x: 1 });
      const next = assertFeed(await http.get(`/feed/${ch}?since=${etag(now)}&wait=5`), ch, 'since=<ETag>');
      assert.deepEqual(next.events.map((e) => [e.version, e.type]), [[3, 'new']]);
    });

    check('limit pages through the feed and more says whether there is more', async () => {
      const ch = `${prefix}.page`;
      await publishMany(ch, [1, 2, 3, 4, 5].map((n) => ({ type: 'n', data: { n } })));
      const seen = [];
      let cursor = '0';
      const mores = [];
      for (let i = 0; i < 5; i++) {
        const res = await http.get(`/feed/${ch}?since=${cursor}&limit=2`);
        const body = assertFeed(res, ch, `page ${i + 1}`);
        seen.push(...body.events.map((e) => e.data.n));
        mores.push(body.more);
        cursor = etag(res);
        if (!body.more) break;
      }
      assert.deepEqual(seen, [1, 2, 3, 4, 5]);
      assert.deepEqual(mores, [true, true, false]);
      assert.equal(cursor, '5');
      const one = assertFeed(await http.get(`/feed/${ch}?limit=1`), ch, 'limit=1');
      assert.deepEqual(one.events.map((e) => e.version), [1]);
      assert.equal(one.more, true);
    });

    check('a cursor older than what is retained gets 410 with oldest and head', async () => {
      const ch = `${prefix}.pruned`;
      await publishMany(ch, [1, 2, 3, 4, 5].map((n) => ({ type: 'n', data: { n } })));
      await sql(`SELECT pgfeed.set_retention(${lit(ch)}, 2, NULL)`);
      await sql('SELECT pgfeed.prune()');

      const gone = await http.get(`/feed/${ch}?since=1`);
      assertProblem(gone, 410, 'since=1 after pruning to 4..5');
      assert.equal(gone.json.oldest, 4, '410 body: oldest');
      assert.equal(gone.json.head, 5, '410 body: head');
      assertProblem(await http.get(`/feed/${ch}?since=2`), 410, 'since=2 after pruning to 4..5');

      const edge = assertFeed(await http.get(`/feed/${ch}?since=3`), ch, 'since=3 (next is the oldest)');
      assert.deepEqual(edge.events.map((e) => e.version), [4, 5]);
      const fromStart = assertFeed(await http.get(`/feed/${ch}`), ch, 'no cursor');
      assert.equal(fromStart.oldest, 4);
      assert.deepEqual(fromStart.events.map((e) => e.version), [4, 5]);
    });

    check('a channel read before pruning also answers 410 afterwards', async () => {
      const ch = `${prefix}.warm`;
      await publishMany(ch, [1, 2, 3, 4].map((n) => ({ type: 'n', data: { n } })));
      assertFeed(await http.get(`/feed/${ch}`), ch, 'before pruning');
      await sql(`SELECT pgfeed.set_retention(${lit(ch)}, 1, NULL)`);
      await sql('SELECT pgfeed.prune()');
      await publish(ch, 'n', { n: 5 }); // the NOTIFY that tells pgfeed the channel moved
      // The commit comes before pgfeed hears of it: allow it a moment.
      let gone;
      for (let i = 0; i < 30; i++) {
        gone = await http.get(`/feed/${ch}?since=1`);
        if (gone.status !== 200 || gone.json?.head === 5) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assertProblem(gone, 410, 'since=1 after pruning to 4..4 and publishing 5');
      // 5 when another suite's pgfeed.prune() (these suites share the database and run
      // side by side) pruned again after the publish.
      assert.ok([4, 5].includes(gone.json.oldest), `oldest ${gone.json.oldest}`);
      assert.equal(gone.json.head, 5);
    });

    check('a channel that never existed is an empty feed at head 0', async () => {
      const ch = `${prefix}.never`;
      const res = await http.get(`/feed/${ch}`);
      const body = assertFeed(res, ch, 'unknown channel');
      assert.equal(body.head, 0);
      assert.deepEqual(body.events, []);
      assert.equal(body.more, false);
      assert.equal(etag(res), '0');
      const again = await http.get(`/feed/${ch}`, { 'If-None-Match': '"0"' });
      assert.equal(again.status, 304, `If-None-Match "0" on an empty feed: ${again.status} ${again.body}`);
    });

    check('/_health answers 200 with the database reachable', async () => {
      const res = await http.get('/feed/_health');
      assert.equal(res.status, 200, `${res.status} ${res.body}`);
      assert.match(res.headers['content-type'] ?? '', /json/);
      assert.equal(res.json?.database, 'up', res.body);
    });

    check('each bad input gets its status and an application/problem+json body', async () => {
      const long = 'a'.repeat(129);
      const cases = [
        ['/feed/bad%20name', 400, 'a space in the channel name'],
        ['/feed/-leading', 400, 'a channel name starting with -'],
        [`/feed/${long}`, 400, 'a 129-character channel name'],
        ['/feed/a*b', 400, 'a * in the channel name'],
        [`/feed/${prefix}?since=-1`, 400, 'since=-1'],
        [`/feed/${prefix}?since=abc`, 400, 'since=abc'],
        [`/feed/${prefix}?since=1.5`, 400, 'since=1.5'],
        [`/feed/${prefix}?since=99999999999999999999`, 400, 'since beyond bigint'],
        [`/feed/${prefix}?limit=0`, 400, 'limit=0'],
        [`/feed/${prefix}?limit=5000`, 400, 'limit=5000'],
        [`/feed/${prefix}?limit=abc`, 400, 'limit=abc'],
        [`/feed/${prefix}?limit=1&limit=2`, 400, 'limit twice'],
        [`/feed/${prefix}?since=%G1`, 400, 'since=%G1'],
        [`/feed/${prefix}?since=1%`, 400, 'a lone % at the end'],
        [`/feed/${prefix}?wait=abc`, 400, 'wait=abc'],
        ['/feed/_nope', 404, 'an unknown /_route'],
        ['/feed/', 400, 'no channel at all'],
        [`/feed/${prefix}?${'x'.repeat(6000)}=1`, 414, 'a 6 KB query string (over pgfeed\'s 4 KB limit)'],
      ];
      for (const [path, status, what] of cases) assertProblem(await http.get(path), status, what);

      for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
        const res = await http.send(method, `/feed/${prefix}`, {
          body: '{"type":"x","data":{}}',
          headers: { 'Content-Type': 'application/json' },
        });
        assertProblem(res, 405, `${method} with publishing off`);
        assert.match(res.headers.allow ?? '', /GET/, `${method}: Allow header`);
      }
    });

    check('input the web server itself refuses never reaches pgfeed, and nothing breaks', async () => {
      // Apache rejects a request line over LimitRequestLine (8190) with its own
      // 414, nginx and lighttpd likewise; %00 and %G1 in the path are refused
      // while the URL is decoded. Only the status is the server's to choose.
      const big = await http.get(`/feed/${prefix}?since=1&pad=${'x'.repeat(10240)}`);
      assert.ok([414, 431, 400].includes(big.status), `10 KB query string: ${big.status}`);
      // lighttpd also refuses %00 in the query string (url-ctrls-reject).
      for (const path of ['/feed/%00', '/feed/%G1', '/feed/a%00b', `/feed/${prefix}?since=%00`]) {
        const res = await http.get(path);
        assert.ok(res.status >= 400 && res.status < 500, `${path}: ${res.status}`);
        if (/problem\+json/.test(res.headers['content-type'] ?? '')) assertProblem(res, res.status, path);
      }
      const health = await http.get('/feed/_health');
      assert.equal(health.status, 200, 'still healthy afterwards');
    });

    check('a tracked table publishes its inserts, updates and deletes', async () => {
      const table = `public.${unique('e2e_items')}`;
      const ch = `${prefix}.items`;
      tables.push(table);
      await sql(`CREATE TABLE ${table} (id int PRIMARY KEY, name text)`);
      await sql(`SELECT pgfeed.track(${lit(table)}, ${lit(ch)})`);
      await sql(`INSERT INTO ${table} VALUES (1, 'one')`);
      await sql(`UPDATE ${table} SET name = 'uno' WHERE id = 1`);
      await sql(`DELETE FROM ${table} WHERE id = 1`);
      const body = assertFeed(await http.get(`/feed/${ch}`), ch, 'tracked table');
      assert.deepEqual(
        body.events.map((e) => [e.version, e.type]),
        [
          [1, 'insert'],
          [2, 'update'],
          [3, 'delete'],
        ],
      );
      const [ins, upd, del] = body.events.map((e) => e.data);
      const label = table.replace(/^public\./, '');
      assert.deepEqual(ins, { table: label, new: { id: 1, name: 'one' } });
      assert.deepEqual(upd, { table: label, old: { id: 1, name: 'one' }, new: { id: 1, name: 'uno' } });
      assert.deepEqual(del, { table: label, old: { id: 1, name: 'uno' } });
    });

    check('a per-row channel template (user:{user_id}) feeds one channel per user', async () => {
      const table = `public.${unique('e2e_notes')}`;
      const base = `${prefix}.user`;
      tables.push(table);
      await sql(`CREATE TABLE ${table} (id int PRIMARY KEY, user_id int, body text)`);
      await sql(`SELECT pgfeed.track(${lit(table)}, ${lit(`${base}:{user_id}`)})`);
      await sql(`INSERT INTO ${table} VALUES (1, 42, 'a'), (2, 43, 'b'), (3, 42, 'c')`);
      await sql(`UPDATE ${table} SET body = 'b2' WHERE id = 2`);
      await sql(`DELETE FROM ${table} WHERE id = 1`);

      const u42 = assertFeed(await http.get(`/feed/${base}:42`), `${base}:42`, 'user 42');
      assert.deepEqual(
        u42.events.map((e) => [e.type, (e.data.new ?? e.data.old).id]),
        [
          ['insert', 1],
          ['insert', 3],
          ['delete', 1],
        ],
      );
      const u43 = assertFeed(await http.get(`/feed/${base}:43`), `${base}:43`, 'user 43');
      assert.deepEqual(
        u43.events.map((e) => [e.type, e.data.new?.body]),
        [
          ['insert', 'b'],
          ['update', 'b2'],
        ],
      );
    });

    if (options.longPoll !== false) {
      check('a long poll is held until the next event is published', async () => {
        const ch = `${prefix}.wait`;
        await publish(ch, 'first', {});
        const held = http.get(`/feed/${ch}?since=1&wait=10`, undefined, { timeoutMs: 15000 });
        await new Promise((r) => setTimeout(r, 700));
        await publish(ch, 'second', { n: 2 });
        const res = await held;
        const body = assertFeed(res, ch, 'woken long poll');
        assert.deepEqual(body.events.map((e) => [e.version, e.type]), [[2, 'second']]);
        assert.ok(res.ms >= 500 && res.ms < 8000, `answered after ${res.ms} ms`);
      });

      check('a long poll with nothing new ends after wait= like an empty poll', async () => {
        const ch = `${prefix}.idle`;
        await publish(ch, 'only', {});
        const res = await http.get(`/feed/${ch}?since=1&wait=1`, undefined, { timeoutMs: 10000 });
        const body = assertFeed(res, ch, 'timed-out long poll');
        assert.deepEqual(body.events, []);
        assert.equal(etag(res), '1');
        assert.ok(res.ms >= 800, `answered after ${res.ms} ms, before the wait ran out`);
        const cond = await http.get(`/feed/${ch}?wait=1`, { 'If-None-Match': '"1"' }, { timeoutMs: 10000 });
        assert.equal(cond.status, 304, `conditional long poll that times out: ${cond.status} ${cond.body}`);
      });

      if (options.maxWait) {
        check(`wait= beyond the configured PGFEED_MAX_WAIT (${options.maxWait} s) is capped`, async () => {
          const ch = `${prefix}.cap`;
          const res = await http.get(`/feed/${ch}?wait=60`, undefined, { timeoutMs: 30000 });
          assertFeed(res, ch, 'capped long poll');
          const ms = options.maxWait * 1000;
          assert.ok(res.ms >= ms - 300 && res.ms < ms + 4000, `answered after ${res.ms} ms, cap ${ms} ms`);
        });
      }
    }

    check('SSE: a live event is streamed as soon as it is published, uncompressed', async () => {
      const ch = `${prefix}.sse`;
      await publish(ch, 'before', {});
      // Accept-Encoding invites the hostile compression of the test configs:
      // the snippet must keep it off the stream, or nothing arrives in time.
      const stream = await openStream(server().base, `/feed/${ch}?since=1`, {
        Accept: 'text/event-stream',
        'Accept-Encoding': 'gzip, deflate, br',
      });
      try {
        assert.equal(stream.status, 200, `status; received: ${stream.text().slice(0, 300)}`);
        assert.match(stream.headers['content-type'] ?? '', /^text\/event-stream/);
        assert.equal(stream.headers['content-encoding'], undefined, 'the stream is not compressed');
        await stream.waitFor(/^retry: ?\d+$/m, 5000);
        await publish(ch, 'live', { n: 2 });
        const block = await stream.waitFor(/^id: ?2\n(?:.*\n)*?\n/m, 5000);
        const data = block
          .split('\n')
          .filter((l) => l.startsWith('data:'))
          .map((l) => l.replace(/^data: ?/, ''))
          .join('\n');
        const event = JSON.parse(data);
        assert.equal(event.version, 2);
        assert.equal(event.type, 'live');
        assert.deepEqual(event.data, { n: 2 });
      } finally {
        stream.close();
      }
    });

    check('the server logs show no crash, leak or sanitizer report', async () => {
      await server().stop();
      const bad = crashLines(server().logsSince());
      assert.deepEqual(bad, [], `pgfeed misbehaved:\n${bad.join('\n')}`);
    });
  });
}
