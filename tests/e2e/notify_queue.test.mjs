// PostgreSQL's NOTIFY queue (issue 9): a listening session that stops reading
// holds the queue's tail, the queue fills, and once full every transaction
// that sends NOTIFY fails, the application's writes to tracked tables
// included. pgfeed shows pg_notification_queue_usage() in /_metrics, and its
// own LISTEN connection is never left inside a transaction.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { after, test } from 'node:test';

import { getParams, RawConn, requestBytes } from './lib/fcgi_raw.mjs';
import { publish, sql, unique } from './lib/pg.mjs';
import { waitFor } from './lib/resilience.mjs';
import { makeRoot, startDaemon } from './lib/servers.mjs';

const ch = unique('nq');
let d;
let root;
let stuck;
after(() => {
  stuck?.kill('SIGKILL');
  try {
    process.kill(d.pid, 'SIGKILL');
  } catch {}
  fs.rmSync(root, { recursive: true, force: true });
});

async function usage() {
  const c = new RawConn(d.socket);
  await c.send(requestBytes(1, getParams('/_metrics')));
  const a = await c.answer(1);
  c.destroy();
  const m = /^pgfeed_notify_queue_usage (\S+)$/m.exec(a.body);
  assert.ok(m, 'pgfeed_notify_queue_usage in /_metrics');
  return Number(m[1]);
}

test('a stuck listener fills the NOTIFY queue; pgfeed shows it, and never idles in a transaction', async (t) => {
  root = makeRoot('notify-queue');
  d = await startDaemon(root);
  await publish(ch, 'a', {});
  assert.equal(await usage(), 0, 'an empty queue reads 0');

  // Another session LISTENs, then sits in a transaction: it reads nothing from now on.
  // (Distinct payloads: PostgreSQL folds identical notifications of one transaction.)
  const tag = unique('stuck');
  stuck = spawn('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1'], { env: process.env, stdio: ['pipe', 'ignore', 'ignore'] });
  stuck.stdin.write(`LISTEN ${tag};\nBEGIN;\nSELECT pg_sleep(120);\n`);
  await waitFor('the stuck session is in its transaction', async () => (await sql(`SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(120)%' AND state = 'active' AND pid <> pg_backend_pid()`)) === '1');
  await sql(`SELECT pg_notify('${tag}', repeat('x', 7000) || g) FROM generate_series(1, 3000) g`);
  const direct = Number(await sql('SELECT pg_notification_queue_usage()'));
  t.diagnostic(`pg_notification_queue_usage() after 21 MB of notifications: ${direct}`);
  assert.ok(direct > 0, 'the queue holds them');
  const seen = await waitFor('pgfeed reports the usage', async () => {
    const u = await usage();
    return u > 0 ? u : null;
  }, { timeoutMs: 12000, everyMs: 500 });
  assert.ok(Math.abs(seen - direct) < 0.01, `pgfeed ${seen}, PostgreSQL ${direct}`);

  // pgfeed still gets its own notifications meanwhile.
  const c = new RawConn(d.socket);
  await c.send(requestBytes(1, getParams(`/${ch}`, { query: 'since=1&wait=10' })));
  await publish(ch, 'b', {});
  const a = await c.answer(1, 5000);
  assert.deepEqual(a?.json.events.map((e) => e.version), [2]);
  c.destroy();

  // Its LISTEN connection runs autocommit statements only: never idle in a transaction.
  const states = await sql(`SELECT DISTINCT state FROM pg_stat_activity WHERE pid IN (SELECT pid FROM pg_stat_activity WHERE query ~ '(pgfeed\\.read|pgfeed\\.sequence|pg_try_advisory_lock|pg_notification_queue_usage|LISTEN pgfeed)')`);
  assert.doesNotMatch(states, /in transaction/, `pgfeed's backend states: ${states}`);
  stuck.kill('SIGKILL');
  stuck = null;
});
