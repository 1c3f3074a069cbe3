// Work done once per channel, not per client (issue 14, item 2): hundreds of
// long polls re-polling through nginx while a burst is published with
// pgfeed.publish. With a ring too small for the burst, the clients behind it
// share catch-up reads: every client gets every event once and in order, and
// pgfeed's reads stay far below clients × re-polls. With --ring-seconds the
// burst stays in the ring and nobody needs a catch-up read at all.
import assert from 'node:assert/strict';
import http from 'node:http';
import { before, describe } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { checkWith } from './lib/foundation.mjs';
import { metrics } from './lib/metrics.mjs';
import { sql, lit, unique } from './lib/pg.mjs';
import { serverFor, startNginx } from './lib/servers.mjs';

const CLIENTS = 300;
const STATEMENTS = 30; // each publishing BATCH events: 3,000 events in about 3 s
const BATCH = 100;
const LIMIT = 100;

/** `pgfeed_catchup_total{served=...}`, 0 when absent. */
function catchup(m, served) {
  return m.get(`pgfeed_catchup_total{served="${served}"}`) ?? 0;
}

/**
 * One client: long polls from `since` on its own keep-alive connection, each
 * from the ETag its answer gave, until it has version `last`. Records every
 * version it sees; a gap, a repeat or a step back is a failure.
 */
async function follow(base, channel, since, last, agent, stats) {
  const url = new URL(base);
  let cursor = since;
  const problems = [];
  while (cursor < last) {
    const res = await new Promise((resolve, reject) => {
      const req = http.get(
        { host: url.hostname, port: url.port, agent, path: `/feed/${channel}?since=${cursor}&wait=10&limit=${LIMIT}` },
        (r) => {
          const chunks = [];
          r.on('data', (c) => chunks.push(c));
          r.on('end', () => resolve({ status: r.statusCode, etag: r.headers.etag, body: Buffer.concat(chunks).toString() }));
          r.on('error', reject);
        },
      );
      req.setTimeout(30000, () => req.destroy(new Error('no answer in 30 s')));
      req.on('error', reject);
    });
    assert.equal(res.status, 200, res.body.slice(0, 300));
    stats.answers++;
    const body = JSON.parse(res.body);
    for (const e of body.events) {
      if (e.version !== cursor + 1) problems.push(`after ${cursor} came ${e.version}`);
      cursor = Math.max(cursor, e.version);
      stats.delivered++;
    }
    assert.equal(res.etag, `"${cursor}"`, 'the ETag is the cursor after the last event');
  }
  return problems;
}

/**
 * Holds CLIENTS long polls, publishes the burst, and follows it to the end.
 * Returns what the clients saw and what pgfeed did meanwhile.
 */
async function burst(base) {
  const channel = unique('e2e_catchup');
  await sql(`SELECT pgfeed.publish(${lit(channel)}, 'start', '{}')`);
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
  const last = 1 + STATEMENTS * BATCH; // the bench is the channel's only publisher
  const stats = { answers: 0, delivered: 0 };
  const m0 = await metrics(base);
  const clients = Array.from({ length: CLIENTS }, () => follow(base, channel, 1, last, agent, stats));
  const deadline = Date.now() + 20000;
  while (((await metrics(base)).get('pgfeed_held_requests') ?? 0) < CLIENTS && Date.now() < deadline) await sleep(50);
  const started = Date.now();
  for (let i = 0; i < STATEMENTS; i++) {
    await sql(`SELECT count(pgfeed.publish(${lit(channel)}, 'burst', jsonb_build_object('i', g)))` +
      ` FROM generate_series(1, ${BATCH}) g`);
    await sleep(Math.max(0, started + (i + 1) * 100 - Date.now()));
  }
  const problems = (await Promise.all(clients)).flat();
  agent.destroy();
  const m1 = await metrics(base);
  const delta = (name) => (m1.get(name) ?? 0) - (m0.get(name) ?? 0);
  return {
    problems,
    stats,
    queries: delta('pgfeed_database_queries_total'),
    reads: catchup(m1, 'read') - catchup(m0, 'read'),
    joined: catchup(m1, 'joined') - catchup(m0, 'joined'),
    kept: catchup(m1, 'kept') - catchup(m0, 'kept'),
  };
}

function report(what, r) {
  console.log(
    `# ${what}: ${CLIENTS} clients, ${r.stats.answers} answers, ${r.stats.delivered} deliveries;` +
      ` pgfeed statements ${r.queries}; catch-up reads ${r.reads}, joined ${r.joined}, kept ${r.kept}`,
  );
}

function assertEveryEventOnce(r) {
  assert.deepEqual(r.problems.slice(0, 5), [], 'every client saw every event once, in order');
  assert.equal(r.stats.delivered, CLIENTS * STATEMENTS * BATCH, 'deliveries = clients × events');
}

describe('catch-up reads shared behind a small ring (nginx)', () => {
  const server = serverFor(() =>
    startNginx({
      daemonEnv: { PGFEED_RING_EVENTS: '16', PGFEED_MAX_HELD: String(CLIENTS + 100) },
    }),
  );
  const check = checkWith(() => server());
  let base;
  before(() => {
    base = server().base;
  });

  check(`${CLIENTS} re-polling clients through a burst: 0 lost, 0 duplicated, reads far below clients × re-polls`, async () => {
    const r = await burst(base);
    report('ring of 16 events', r);
    assertEveryEventOnce(r);
    assert.ok(r.reads + r.joined + r.kept > 0, 'the clients were behind the ring');
    // Each client's re-poll would have been its own read: stats.answers of them.
    assert.ok(r.queries * 10 < r.stats.answers, `${r.queries} statements for ${r.stats.answers} answers`);
    assert.ok(r.reads * 10 < r.reads + r.joined + r.kept, `${r.reads} catch-up reads for ${r.reads + r.joined + r.kept} clients behind`);
  });
});

describe('--ring-seconds keeps the burst in the ring (nginx)', () => {
  const server = serverFor(() =>
    startNginx({
      daemonEnv: {
        PGFEED_RING_EVENTS: '16',
        PGFEED_RING_SECONDS: '60',
        PGFEED_RING_BYTES: String(16 << 20),
        PGFEED_MAX_HELD: String(CLIENTS + 100),
      },
    }),
  );
  const check = checkWith(() => server());
  let base;
  before(() => {
    base = server().base;
  });

  check(`${CLIENTS} re-polling clients through a burst: every answer from the ring`, async () => {
    const r = await burst(base);
    report('ring of 16 events and 60 s', r);
    assertEveryEventOnce(r);
    assert.equal(r.reads + r.joined + r.kept, 0, 'no client fell behind the ring');
    // What is left is the ring's own reads: a couple per publishing statement, whatever the clients.
    assert.ok(r.queries < 4 * STATEMENTS, `${r.queries} statements for ${STATEMENTS} publishing statements`);
  });
});
