// pgfeed.publish_many through lighttpd and the pgfeed it spawns: a batch is
// one transaction with one NOTIFY naming its last version, and subscribers
// must still see every event of it, in order, once: an SSE stream waiting at
// the live edge, a long poll held before the batch (and re-polling from each
// answer's ETag, since a batch larger than a page arrives over several), and
// a second batch right behind the first.
import assert from 'node:assert/strict';
import { afterEach, before, describe } from 'node:test';

import { checkWith, etag } from './lib/foundation.mjs';
import { client } from './lib/http.mjs';
import { lit, sql, unique } from './lib/pg.mjs';
import { serverFor, startLighttpd } from './lib/servers.mjs';
import { openSse, range, versionsOf } from './lib/sse_probe.mjs';

const prefix = unique('pubmany');
let server;
let http;
const streams = [];
const check = checkWith(() => server());
const BATCH = 250; // more than a page (limit 100) and than one SSE catch-up read

/** One pgfeed.publish_many call of n events {"n": from..from+n-1}; returns its versions. */
async function publishBatch(channel, from, n) {
  const out = await sql(
    `SELECT string_agg(v::text, ',') FROM pgfeed.publish_many(${lit(channel)}, 'batch',` +
      ` (SELECT array_agg(jsonb_build_object('n', g) ORDER BY g) FROM generate_series(${from}, ${from + n - 1}) g)) v`,
  );
  return out.split(',').map(Number);
}

describe('pgfeed.publish_many: every event of a batch reaches every subscriber', () => {
  server = serverFor(() => startLighttpd());
  before(() => {
    http = client(server().base);
  });
  afterEach(() => {
    for (const s of streams.splice(0)) s.close();
  });

  check('an SSE stream at the live edge gets both batches, in order, once', async () => {
    const ch = `${prefix}.sse`;
    const s = await openSse(server().base, `/feed/${ch}?since=0`);
    streams.push(s);
    assert.equal(s.status, 200);
    await s.waitFor('retry: first', (st) => st.items.length > 0);
    assert.deepEqual(await publishBatch(ch, 1, BATCH), range(1, BATCH));
    assert.deepEqual(await publishBatch(ch, BATCH + 1, BATCH), range(BATCH + 1, 2 * BATCH));
    // Plain events only: a stream may also carry `event: status` (the database came up).
    await s.waitFor(`${2 * BATCH} events`, (st) => versionsOf(st.items).length >= 2 * BATCH, 15000);
    assert.deepEqual(versionsOf(s.items), range(1, 2 * BATCH));
    const data = s.items.filter((i) => i.kind === 'event' && i.event === undefined).map((i) => JSON.parse(i.data).data.n);
    assert.deepEqual(data, range(1, 2 * BATCH), 'events in array order');
  });

  check('a long poll held before the batch, re-polling from each ETag, gets every event', async () => {
    const ch = `${prefix}.longpoll`;
    const held = http.get(`/feed/${ch}?since=0&wait=20`);
    // The request is held once pgfeed counts it; then the batch commits.
    await new Promise((r) => setTimeout(r, 300));
    await publishBatch(ch, 1, BATCH);
    let res = await held;
    assert.equal(res.status, 200);
    const seen = [];
    for (;;) {
      const body = JSON.parse(res.body);
      seen.push(...body.events.map((e) => e.version));
      if (!body.more && seen.length >= BATCH) break;
      assert.ok(body.events.length > 0, `an answer without events before ${BATCH}: ${res.body.slice(0, 200)}`);
      res = await http.get(`/feed/${ch}?since=${etag(res)}`);
      assert.equal(res.status, 200);
    }
    assert.deepEqual(seen, range(1, BATCH));
  });
});
