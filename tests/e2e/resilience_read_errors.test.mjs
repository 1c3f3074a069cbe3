// Reads that fail while the database is up, through nginx in front of a pgfeed
// daemon that connects as a least-privilege role (USAGE on schema pgfeed,
// SELECT on its two tables, as the README describes):
//   SELECT on pgfeed.event is revoked under held long polls, a stream and
//   polls: every request gets a problem+json naming the cause within a second,
//   pgfeed logs the cause once, its query counter stays flat (reads back off
//   like reconnects instead of re-querying per request), and once SELECT is
//   granted back the stream and the clients' next polls get every event,
//   nothing lost.
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';

import { assertFeed, assertProblem, checkWith } from './lib/foundation.mjs';
import { client } from './lib/http.mjs';
import { metrics } from './lib/metrics.mjs';
import { publish, sql, unique } from './lib/pg.mjs';
import { openRequest, waitFor } from './lib/resilience.mjs';
import { crashLines, serverFor, startNginx } from './lib/servers.mjs';

const WAIT = 25; // every check must finish far sooner than a long poll's wait
const role = unique('pgfeed_reader');
const ch = unique('res_read');

describe('pgfeed.read failing while the database is up (SELECT revoked), through nginx', () => {
  before(async () => {
    await sql(`CREATE ROLE ${role} LOGIN;
      GRANT USAGE ON SCHEMA pgfeed TO ${role};
      GRANT SELECT ON pgfeed.channel, pgfeed.event TO ${role}`);
  });
  after(async () => {
    await sql(`DROP OWNED BY ${role}; DROP ROLE ${role}`).catch((err) => process.stderr.write(`${err.message}\n`));
  });
  const server = serverFor(() =>
    startNginx({ daemonEnv: { PGUSER: role, PGFEED_MAX_WAIT: String(WAIT + 5), PGFEED_PRUNE_INTERVAL: '0' } }),
  );
  const check = checkWith(server);

  check('every request gets 503 naming the cause at once; granting SELECT back resumes with nothing lost', async (t) => {
    const base = server().base;
    const http = client(base);
    await publish(ch, 'a', { n: 1 });
    await publish(ch, 'b', { n: 2 });
    assert.deepEqual(assertFeed(await http.get(`/feed/${ch}`), ch).events.map((e) => e.version), [1, 2]);

    const held = [0, 1, 2, 3].map(() => openRequest(base, `/feed/${ch}?since=2&wait=${WAIT}`));
    let streamed = '';
    const stream = openRequest(base, `/feed/${ch}?since=2`, {
      headers: { Accept: 'text/event-stream' },
      onData: (text) => {
        streamed += text;
      },
    });
    assert.equal((await stream.response).status, 200);
    await waitFor('5 requests held', async () => (await metrics(base)).get('pgfeed_held_requests') === 5);

    await sql(`REVOKE SELECT ON pgfeed.event FROM ${role}`);
    const revokedAt = Date.now();
    await publish(ch, 'c', { n: 3 }); // its NOTIFY makes pgfeed read, which now fails
    const queriesBefore = (await metrics(base)).get('pgfeed_database_queries_total');

    for (const [i, p] of held.entries()) {
      const done = await p.done;
      const res = { status: done.status, headers: done.headers ?? {}, body: done.body, json: JSON.parse(done.body || 'null') };
      assertProblem(res, 503, `held long poll ${i} after REVOKE`);
      assert.match(res.json.detail, /permission denied for table event/, `held long poll ${i}: the cause`);
      assert.match(res.headers['retry-after'] ?? '', /^[1-9]\d*$/, `held long poll ${i}: Retry-After`);
      assert.ok(Date.now() - revokedAt < 1500, `held long poll ${i} answered ${Date.now() - revokedAt} ms after the REVOKE and publish`);
    }

    // Polls and new long polls, one after another for two seconds: each is answered at once.
    let answered = 0;
    let slowest = 0;
    const until = Date.now() + 2000;
    while (Date.now() < until) {
      const path = answered % 2 ? `/feed/${ch}?since=2&wait=${WAIT}` : `/feed/${ch}?since=2`;
      const res = await http.get(path);
      assertProblem(res, 503, `request ${answered} (${path}) while SELECT is revoked`);
      assert.match(res.json.detail, /permission denied for table event \(SQLSTATE 42501\)/, `request ${answered}: the cause`);
      slowest = Math.max(slowest, res.ms);
      answered++;
    }
    assert.ok(slowest < 1000, `slowest answer while reads fail: ${slowest} ms`);
    const queriesAfter = (await metrics(base)).get('pgfeed_database_queries_total');
    const queries = queriesAfter - queriesBefore;
    // Backoff from 100 ms doubling: a handful of retries in two seconds, however many requests came.
    assert.ok(queries <= 8, `${queries} queries for ${answered} requests in 2 s while reads fail`);
    assert.ok(answered >= 20, `only ${answered} requests in 2 s`);
    const stillOpen = await Promise.race([stream.done.then(() => false), Promise.resolve(true)]);
    assert.ok(stillOpen, 'the stream stays open while reads fail');

    await sql(`GRANT SELECT ON pgfeed.event TO ${role}`);
    const grantedAt = Date.now();
    await publish(ch, 'd', { n: 4 });
    const feed = await waitFor(
      'a poll succeeds again after GRANT',
      async () => {
        const res = await http.get(`/feed/${ch}?since=2`);
        return res.status === 200 ? res : null;
      },
      { timeoutMs: 10000, everyMs: 100 },
    );
    assert.deepEqual(assertFeed(feed, ch, 'first poll after GRANT').events.map((e) => e.version), [3, 4]);
    const recoveredMs = Date.now() - grantedAt;
    await waitFor('the stream delivers 3 and 4', () => /id: 4\n/.test(streamed), {
      timeoutMs: 10000,
      describe: () => JSON.stringify(streamed),
    });
    const ids = [...streamed.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    assert.deepEqual(ids, [3, 4], 'the stream got each event once, in order');
    stream.abort();

    const log = server().logsSince();
    const causes = log.split('\n').filter((l) => l.includes('pgfeed.read failed'));
    assert.equal(causes.length, 1, `the cause is logged once:\n${causes.join('\n')}`);
    assert.match(log, /pgfeed\.read works again/);
    assert.deepEqual(crashLines(log), []);
    t.diagnostic(
      `${answered} requests answered 503 in 2 s (slowest ${slowest} ms) with ${queries} queries; ` +
        `delivery resumed ${recoveredMs} ms after GRANT`,
    );
  });
});
