// What the database holds and what other roles send, through nginx in front of
// a pgfeed daemon (apache/nginx-pgfeed.conf): the cache must survive data that
// breaks its assumptions, and a NOTIFY is only ever a hint.
//   - a version hole (a head moved inside a publishing transaction, or an
//     event row deleted) is served as the events that exist;
//   - a forged NOTIFY announcing a version far beyond the head costs one read;
//   - a head with no event behind it ends paging (more: false, cursor at the
//     head) and does not make streams re-read in a loop;
//   - a channel deleted and re-created (or reset) is noticed at once: held
//     polls and streams are answered as for a gone cursor, a cursor beyond
//     the new head is gone, old events leave memory. (A poll's bare number
//     cannot say which incarnation it counted, so a cursor within the new
//     head simply reads on.)
// Every check also asserts that pgfeed logged no crash (the sanitizer build
// reports the use-after-free the hole used to cause).
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { assertFeed, assertProblem, checkWith, etag } from './lib/foundation.mjs';
import { client } from './lib/http.mjs';
import { lit, publish, publishMany, sql, unique } from './lib/pg.mjs';
import { metrics } from './lib/metrics.mjs';
import { waitFor } from './lib/resilience.mjs';
import { serverFor, startNginx } from './lib/servers.mjs';
import { openSse } from './lib/sse_probe.mjs';

const prefix = unique('integrity');
// A small ring, so ring slots are reused and a stale one holds a freed event.
const getServer = serverFor(() => startNginx({ daemonEnv: { PGFEED_RING_EVENTS: '4', PGFEED_MAX_WAIT: '30' } }), { checkCrashes: true });

function queries() {
  return metrics(getServer().base).then((m) => m.get('pgfeed_database_queries_total'));
}

/** Statements pgfeed sends over ms milliseconds while nothing happens. */
async function queriesDuring(ms) {
  const before = await queries();
  await sleep(ms);
  return (await queries()) - before; // /_metrics itself sends none
}

const versions = (res) => res.json.events.map((e) => e.version);

/** Polls until the cached answer from since shows head (NOTIFY arrives asynchronously). */
async function pollUntilHead(http, ch, since, head) {
  return waitFor(`${ch} at head ${head}`, async () => {
    const res = await http.get(`/feed/${ch}?since=${since}`);
    return res.status === 200 && res.json.head === head && res;
  });
}

describe('data that breaks the cache\'s assumptions, through nginx', () => {
  const check = checkWith(getServer);

  check('version holes made inside a publishing transaction are served as the events that exist', async () => {
    const http = client(getServer().base);
    const ch = `${prefix}.hole`;
    await publishMany(ch, [1, 2, 3, 4].map((n) => ({ type: 't', data: { n } })));
    // Cached and known at head 4: all four ring slots hold events.
    await pollUntilHead(http, ch, 0, 4);
    // A publisher with the old documented grants moves the head by hand twice.
    const skip = `UPDATE pgfeed.channel SET head = head + 1 WHERE name = ${lit(ch)};`;
    const pub = (n) => `SELECT pgfeed.publish(${lit(ch)}, 't', '{"n":${n}}');`;
    await sql(`BEGIN; ${skip} ${pub(6)} ${skip} ${pub(8)} COMMIT;`);
    const res = await pollUntilHead(http, ch, 4, 8);
    assert.deepEqual(versions(res), [6, 8], `events after 4: ${res.body}`);
    assert.deepEqual(res.json.events.map((e) => e.data.n), [6, 8]);
    assert.equal(res.json.more, false, 'nothing more after the holes');
    assert.equal(etag(res), '8');
    // Cursors inside the holes: the ring must not be indexed by version.
    for (const [since, want] of [[5, [6, 8]], [6, [8]], [7, [8]]]) {
      const r = await http.get(`/feed/${ch}?since=${since}`);
      assert.equal(r.status, 200, `since=${since}: ${r.status} ${r.body}`);
      assert.deepEqual(versions(r), want, `events after ${since}: ${r.body}`);
      assert.equal(r.json.more, false);
    }
    const atHead = await http.get(`/feed/${ch}?since=8`, { 'If-None-Match': '"8"' });
    assert.equal(atHead.status, 304);
  });

  check('an event row deleted (a data-protection request) leaves memory and the feed reads on', async () => {
    const http = client(getServer().base);
    const ch = `${prefix}.erased`;
    await publishMany(ch, [1, 2, 3].map((n) => ({ type: 't', data: { n } })));
    await pollUntilHead(http, ch, 0, 3);
    await sql(`DELETE FROM pgfeed.event WHERE channel = ${lit(ch)} AND version = 2`);
    const res = await waitFor('event 2 gone from the answer', async () => {
      const r = await http.get(`/feed/${ch}?since=0`);
      return r.status === 200 && !versions(r).includes(2) && r;
    });
    assert.deepEqual(versions(res), [1, 3]);
    await publish(ch, 't', { n: 4 });
    const next = await pollUntilHead(http, ch, 1, 4);
    assert.deepEqual(versions(next), [3, 4]);
  });

  check('a forged NOTIFY far beyond the head costs a read, not a query loop', async () => {
    const http = client(getServer().base);
    const ch = `${prefix}.forged`;
    await publish(ch, 't', { n: 1 });
    await pollUntilHead(http, ch, 0, 1);
    await sql(`NOTIFY pgfeed, ${lit(`999999 ${ch}`)}`);
    await sleep(200);
    const n = await queriesDuring(1000);
    assert.ok(n <= 2, `statements sent in the second after the forged NOTIFY: ${n}`);
    const res = await http.get(`/feed/${ch}?since=0`);
    assert.equal(res.json.head, 1, 'the head is what the database says');
    await publish(ch, 't', { n: 2 });
    assert.deepEqual(versions(await pollUntilHead(http, ch, 1, 2)), [2], 'later events still arrive');
  });

  check('a head with no event behind it ends paging and costs a stream no query loop', async () => {
    const http = client(getServer().base);
    const ch = `${prefix}.headless`;
    await publishMany(ch, [1, 2].map((n) => ({ type: 't', data: { n } })));
    await pollUntilHead(http, ch, 0, 2);
    const stream = await openSse(getServer().base, `/feed/${ch}`, { 'Last-Event-ID': '0' });
    try {
      await stream.waitEvents(2, 5000);
      await sql(
        `BEGIN; SELECT pgfeed.publish(${lit(ch)}, 't', '{"n":3}');` +
          ` UPDATE pgfeed.channel SET head = head + 1 WHERE name = ${lit(ch)}; COMMIT;`,
      );
      await stream.waitEvents(3, 5000);
      await sleep(300);
      const n = await queriesDuring(1000);
      assert.ok(n <= 2, `statements sent in a second with a stream on a headless channel: ${n}`);

      const res = await pollUntilHead(http, ch, 2, 4);
      assert.deepEqual(versions(res), [3]);
      assert.equal(res.json.more, false, `no more events: ${res.body}`);
      assert.equal(etag(res), '4', 'the cursor moves to the head');
      const atThree = await http.get(`/feed/${ch}?since=3`);
      assert.deepEqual(versions(atThree), []);
      assert.equal(atThree.json.more, false, `more after 3: ${atThree.body}`);
      assert.equal(etag(atThree), '4');

      await publish(ch, 't', { n: 5 });
      const ev = await stream.waitEvents(4, 5000);
      assert.equal(JSON.parse(ev[3].data).version, 5, 'the stream goes on after the hole');
    } finally {
      stream.close();
    }
  });

  check('a channel deleted and re-created is noticed: old cursors are gone, old events leave memory', async () => {
    const http = client(getServer().base);
    const ch = `${prefix}.recreated`;
    await publishMany(ch, [1, 2, 3].map((n) => ({ type: 'old', data: { n } })));
    await pollUntilHead(http, ch, 0, 3);
    const stream = await openSse(getServer().base, `/feed/${ch}`, { 'Last-Event-ID': '3' });
    try {
      await sql(
        `BEGIN; DELETE FROM pgfeed.event WHERE channel = ${lit(ch)};` +
          ` DELETE FROM pgfeed.channel WHERE name = ${lit(ch)}; COMMIT;`,
      );
      const held = http.get(`/feed/${ch}?since=3&wait=20`);
      await sleep(200);
      await publish(ch, 'new', { n: 1 });
      assertProblem(await held, 410, 'long poll held across the re-creation');
      const gone = await waitFor('the old cursor answered as gone', async () => {
        const r = await http.get(`/feed/${ch}?since=3`);
        return r.status === 410 && r;
      });
      assertProblem(gone, 410, 'cursor of the deleted channel');
      const res = await http.get(`/feed/${ch}?since=0`);
      assert.deepEqual(res.json.events.map((e) => e.type), ['new'], res.body);
      const reset = await stream.waitFor('a reset event', (s) => s.items.find((i) => i.kind === 'event' && i.event === 'reset'), 5000);
      assert.ok(reset, 'the stream says its cursor is gone');
    } finally {
      stream.close();
    }
  });

  check('a channel reset by hand (head and events cleared) is noticed the same way', async () => {
    const http = client(getServer().base);
    const ch = `${prefix}.reset`;
    await publishMany(ch, [1, 2].map((n) => ({ type: 'old', data: { n } })));
    await pollUntilHead(http, ch, 0, 2);
    await sql(
      `BEGIN; DELETE FROM pgfeed.event WHERE channel = ${lit(ch)};` +
        ` UPDATE pgfeed.channel SET head = 0, oldest = 1 WHERE name = ${lit(ch)}; COMMIT;`,
    );
    await publish(ch, 'new', { n: 1 });
    const gone = await waitFor('the old cursor answered as gone', async () => {
      const r = await http.get(`/feed/${ch}?since=2`);
      return r.status === 410 && r;
    });
    assertProblem(gone, 410, 'cursor of the reset channel');
    const res = await http.get(`/feed/${ch}?since=0`);
    assert.deepEqual(res.json.events.map((e) => e.type), ['new'], res.body);
  });
});
