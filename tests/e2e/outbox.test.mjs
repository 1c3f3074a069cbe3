// The outbox end to end (issue 14 item 4): events committed with
// pgfeed.enqueue get their versions from the pgfeed process that holds the
// sequencer and reach subscribers behind nginx like published ones, and of
// two pgfeed processes on one database exactly one sequences; killing it hands
// the job to the other, with no event lost or delivered twice.
//
// In a database of its own: the sequencer lock is per database, and the pgfeed
// processes of other e2e files running at the same time on the shared one
// would hold it there.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';

import { etag } from './lib/foundation.mjs';
import { fcgiGet } from './lib/fcgi_client.mjs';
import { client } from './lib/http.mjs';
import { metrics, parseMetrics } from './lib/metrics.mjs';
import { lit, sql, unique } from './lib/pg.mjs';
import { waitFor } from './lib/resilience.mjs';
import { crashLines, makeRoot, startDaemon, startNginx } from './lib/servers.mjs';
import { openSse, range, versionsOf } from './lib/sse_probe.mjs';
import { testEnv } from './lib/env.mjs';

const DB = unique('pgfeed_outbox').toLowerCase();
const prefix = unique('outbox');
const daemonEnv = { PGDATABASE: DB, PGFEED_SEQUENCE_MS: '10', PGFEED_SEQUENCE_BATCH: '50' };
let standalone; // {child, socket, pid, logs} of the pgfeed started first, alone
let standaloneRoot;
let nginx; // nginx in front of the second pgfeed
let http;
const streams = [];

/** psql on the outbox test's database; returns its unaligned output. */
function dbSql(text, file) {
  const args = ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', ...(file ? ['-f', file] : ['-c', text])];
  return new Promise((resolve, reject) => {
    execFile('psql', args, { env: { ...process.env, PGDATABASE: DB }, timeout: 60000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`psql failed: ${stderr.trim() || err.message}\nSQL: ${text ?? file}`));
      else resolve(stdout.trim());
    });
  });
}

/** The standalone pgfeed's metrics, asked over its FastCGI socket (no web server in front). */
async function standaloneMetrics() {
  const res = await fcgiGet(standalone.socket, '/_metrics').done;
  assert.equal(res.status, 200, `standalone /_metrics: ${res.body.slice(0, 200)}`);
  return parseMetrics(res.body);
}

/** Enqueues events {n: from..to} on channel, in one transaction, in order. */
function enqueue(channel, from, to) {
  return dbSql(
    `SELECT pgfeed.enqueue(${lit(channel)}, 'queued', jsonb_build_object('n', g)) FROM generate_series(${from}, ${to}) g ORDER BY g`,
  );
}

function dataOf(items) {
  return items.filter((i) => i.kind === 'event' && i.event === undefined).map((i) => JSON.parse(i.data).data.n);
}

describe('the outbox: enqueued events reach subscribers; one sequencer per database', () => {
  before(async () => {
    await sql(`CREATE DATABASE ${DB}`);
    await dbSql(null, path.join(testEnv().sourceDir, 'sql', 'install.sql'));
    standaloneRoot = makeRoot('outbox');
    standalone = await startDaemon(standaloneRoot, { env: daemonEnv });
    // It is alone on the database, so it takes the job.
    await waitFor('the first pgfeed holds the sequencer', async () => (await standaloneMetrics()).get('pgfeed_sequencer') === 1);
    nginx = await startNginx({ daemonEnv });
    http = client(nginx.base);
  });
  afterEach(() => {
    for (const s of streams.splice(0)) s.close();
  });
  after(async () => {
    const logs = [];
    if (nginx) {
      await nginx.stop();
      logs.push(nginx.logsSince());
      nginx.cleanup();
    }
    if (standalone) {
      try {
        process.kill(standalone.pid, 'SIGTERM');
      } catch {
        // killed by the hand-over test
      }
      logs.push(fs.readFileSync(path.join(standaloneRoot, 'stderr.log'), 'utf8'));
      fs.rmSync(standaloneRoot, { recursive: true, force: true });
    }
    await sql(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
    assert.deepEqual(logs.flatMap(crashLines), [], 'no pgfeed crashed');
  });

  test('only one of the two processes holds the sequencer', async () => {
    const behindNginx = await metrics(nginx.base);
    assert.equal(behindNginx.get('pgfeed_sequencer'), 0);
    assert.equal((await standaloneMetrics()).get('pgfeed_sequencer'), 1);
    // The waiting one tries the lock every few seconds, not every turn.
    const before = behindNginx.get('pgfeed_sequencer_queries_total');
    await new Promise((r) => setTimeout(r, 2500));
    const tries = (await metrics(nginx.base)).get('pgfeed_sequencer_queries_total') - before;
    assert.ok(tries >= 1 && tries <= 3, `${tries} tries of the lock in 2.5 s`);
  });

  test('enqueued events reach a held long poll and an SSE stream with versions 1..n', async () => {
    const ch = `${prefix}.live`;
    const s = await openSse(nginx.base, `/feed/${ch}?since=0`);
    streams.push(s);
    assert.equal(s.status, 200);
    await s.waitFor('retry: first', (st) => st.items.length > 0);
    const held = http.get(`/feed/${ch}?since=0&wait=20`);
    await new Promise((r) => setTimeout(r, 300)); // held before anything commits
    await enqueue(ch, 1, 3); // one transaction
    await enqueue(ch, 4, 4);
    await enqueue(ch, 5, 120); // more than a batch (50): several calls, one after another
    let res = await held;
    assert.equal(res.status, 200);
    const seen = [];
    for (;;) {
      const body = JSON.parse(res.body);
      seen.push(...body.events.map((e) => [e.version, e.data.n]));
      if (seen.length >= 120) break;
      res = await http.get(`/feed/${ch}?since=${etag(res)}&wait=10`);
      assert.equal(res.status, 200);
    }
    assert.deepEqual(
      seen,
      range(1, 120).map((v) => [v, v]),
      'versions 1..120, in enqueue order',
    );
    await s.waitFor('120 events', (st) => versionsOf(st.items).length >= 120, 15000);
    assert.deepEqual(versionsOf(s.items), range(1, 120));
    assert.deepEqual(dataOf(s.items), range(1, 120));
    assert.equal(await dbSql(`SELECT count(*) FROM pgfeed.outbox`), '0');
  });

  test('killing the sequencer hands the job to the other process; nothing lost or doubled', async () => {
    const ch = `${prefix}.handover`;
    const s = await openSse(nginx.base, `/feed/${ch}?since=0`);
    streams.push(s);
    await s.waitFor('retry: first', (st) => st.items.length > 0);
    await enqueue(ch, 1, 10);
    await s.waitFor('10 events', (st) => versionsOf(st.items).length >= 10, 10000);
    const movedBefore = (await metrics(nginx.base)).get('pgfeed_sequenced_total');

    process.kill(standalone.pid, 'SIGKILL');
    // Enqueued while nobody sequences: they wait in the outbox.
    for (let n = 11; n <= 60; n += 10) {
      await enqueue(ch, n, n + 9);
      await new Promise((r) => setTimeout(r, 100));
    }
    await waitFor('the second pgfeed holds the sequencer', async () => (await metrics(nginx.base)).get('pgfeed_sequencer') === 1, {
      timeoutMs: 10000,
    });
    await enqueue(ch, 61, 70);
    await s.waitFor('70 events', (st) => versionsOf(st.items).length >= 70, 15000);
    assert.deepEqual(versionsOf(s.items), range(1, 70), 'every version once, in order');
    assert.deepEqual(dataOf(s.items), range(1, 70), 'in enqueue order');
    const after = await metrics(nginx.base);
    assert.ok(after.get('pgfeed_sequenced_total') - movedBefore >= 60, 'the survivor sequenced what was left');
    assert.equal(await dbSql(`SELECT count(*) FROM pgfeed.outbox`), '0');
    assert.equal(await dbSql(`SELECT head || ' ' || count(*) FROM pgfeed.channel c JOIN pgfeed.event e ON e.channel = c.name WHERE c.name = ${lit(ch)} GROUP BY head`), '70 70');
  });
});
