// Bounded answers (issue 9): --max-answer-bytes pages a poll by bytes as limit
// does by count (more: true, the ETag says where to go on), an event larger
// than --ring-bytes is delivered alone and never cached, and a client that
// does not read its answer within --drain-timeout is closed, its queued bytes
// freed. Raw FastCGI straight to a pgfeed daemon.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { getParams, RawConn, requestBytes, T } from './lib/fcgi_raw.mjs';
import { publish, sql, unique } from './lib/pg.mjs';
import { waitFor } from './lib/resilience.mjs';
import { crashLines, makeRoot, startDaemon } from './lib/servers.mjs';

const prefix = unique('ans');
let d;
let root;
before(async () => {
  root = makeRoot('answers');
  d = await startDaemon(root, { env: { PGFEED_MAX_ANSWER_BYTES: '1000000', PGFEED_RING_BYTES: '150000', PGFEED_DRAIN_TIMEOUT: '1' } });
});
after(() => {
  const log = fs.readFileSync(`${root}/stderr.log`, 'utf8');
  try {
    process.kill(d.pid, 'SIGKILL');
  } catch {}
  fs.rmSync(root, { recursive: true, force: true });
  assert.deepEqual(crashLines(log), []);
});

async function get(pathInfo, query = '') {
  const c = new RawConn(d.socket);
  await c.send(requestBytes(1, getParams(pathInfo, { query })));
  const a = await c.answer(1, 10000);
  c.destroy();
  return a;
}

async function metric(name) {
  const a = await get('/_metrics');
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(a.body)[1]);
}

/** Publishes n events whose data is about size bytes. */
function publishBig(ch, n, size) {
  return sql(`SELECT pgfeed.publish('${ch}', 'big', jsonb_build_object('pad', repeat('x', ${size}))) FROM generate_series(1, ${n})`);
}

test('--max-answer-bytes pages by bytes: more: true and the ETag lead on, nothing lost', async () => {
  const ch = `${prefix}.page`;
  await publishBig(ch, 6, 300000);
  const seen = [];
  let since = 0;
  for (let page = 0; page < 6 && seen.length < 6; page++) {
    const a = await get(`/${ch}`, `since=${since}`);
    assert.equal(a.status, 200, a.body.slice(0, 200));
    assert.ok(a.body.length < 1010000, `answer of ${a.body.length} bytes within the budget`);
    const versions = a.json.events.map((e) => e.version);
    assert.equal(versions.length, 3, `three 300 KB events per 1 MB answer: ${versions}`);
    seen.push(...versions);
    assert.equal(a.json.more, seen.length < 6, 'more: true while events remain');
    since = Number(a.headers.etag.replaceAll('"', ''));
  }
  assert.deepEqual(seen, [1, 2, 3, 4, 5, 6]);
});

test('an event larger than --ring-bytes is not cached, and one over --max-answer-bytes is delivered alone', async () => {
  const ch = `${prefix}.huge`;
  await publishBig(ch, 1, 1200000);
  await sql(`SELECT pgfeed.publish('${ch}', 'small', '{}')`);
  const queries = await metric('pgfeed_database_queries_total');
  for (let i = 0; i < 2; i++) {
    const a = await get(`/${ch}`, 'since=0');
    assert.equal(a.status, 200);
    assert.deepEqual(a.json.events.map((e) => e.version), [1], 'the 1.2 MB event alone');
    assert.equal(a.json.more, true);
  }
  assert.ok((await metric('pgfeed_database_queries_total')) - queries >= 2, 'each read of it went to the database');
  const rest = await get(`/${ch}`, 'since=1');
  assert.deepEqual(rest.json.events.map((e) => e.version), [2]);
});

test('clients that do not read their answer within --drain-timeout are closed', async (t) => {
  const ch = `${prefix}.drain`;
  await publishBig(ch, 3, 300000);
  const before = await metric('pgfeed_undrained_closed_total');
  const socks = [];
  for (let i = 0; i < 8; i++) {
    const s = net.connect(d.socket);
    s.pause(); // reads nothing: the answer stays queued in pgfeed
    s.on('error', () => {});
    await new Promise((resolve) => s.once('connect', resolve));
    s.write(requestBytes(1, getParams(`/${ch}`, { query: 'since=0' })));
    socks.push(s);
  }
  const started = Date.now();
  await waitFor('the 8 stalled readers are closed', async () => (await metric('pgfeed_undrained_closed_total')) - before === 8, { timeoutMs: 5000, everyMs: 100 });
  t.diagnostic(`closed ${Date.now() - started} ms after the answers were queued`);
  for (const s of socks) s.destroy();
  const a = await get(`/${ch}`, 'since=0');
  assert.equal(a.status, 200, 'others are answered');
});

// What the front server parses per answer (issue 14): headers and body in one
// STDOUT record, then END_REQUEST, in one write; over a kept connection too.
test('an answer is one STDOUT record and END_REQUEST, in one write', async () => {
  const ch = `${prefix}.records`;
  await publish(ch, 'x', { n: 1 });
  const c = new RawConn(d.socket);
  const asks = [
    { query: 'since=0', status: 200 },
    { query: 'since=1', headers: { 'If-None-Match': '"1"' }, status: 304 },
    { query: 'since=0', status: 200 },
  ];
  for (const [i, ask] of asks.entries()) {
    const id = i + 1;
    const from = c.records.length;
    const chunksFrom = c.chunks.length;
    await c.send(requestBytes(id, getParams(`/${ch}`, { query: ask.query, headers: ask.headers ?? {} }), { keep: true }));
    const a = await c.answer(id, 10000);
    assert.ok(a, `answer ${id} over the kept connection`);
    assert.equal(a.status, ask.status, a.body.slice(0, 200));
    const types = c.records.slice(from).map((r) => r.type);
    assert.deepEqual(types, [T.STDOUT, T.END_REQUEST], `answer ${id}: records ${types}`);
    assert.deepEqual(c.chunks.slice(chunksFrom).filter((k) => k.length), [[T.STDOUT, T.END_REQUEST]], `answer ${id} in one read`);
    if (ask.status === 200) assert.equal(a.json.events.length, 1);
  }
  c.destroy();
});
