// Issue 9, item 2: one client asks for 100,000 distinct random channel names —
// short polls, long polls, several channels per request — against one pgfeed
// daemon with a small --cache-bytes. Memory must stay within the budget plus a
// small constant, head loads must be batched (far fewer queries than names),
// and a probe on a known channel must keep answering, its long polls never
// refused as "database unreachable".
//
// PGFEED_FLOOD_NAMES (default 100000) and PGFEED_FLOOD_CACHE_BYTES (default
// 4 MiB) change the run; the figures are printed as diagnostics.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { timedGet } from './lib/fcgi_raw.mjs';
import { parseMetrics } from './lib/metrics.mjs';
import { publish, unique } from './lib/pg.mjs';
import { rssKiB } from './lib/sse_probe.mjs';
import { crashLines, makeRoot, startDaemon } from './lib/servers.mjs';

const NAMES = Number(process.env.PGFEED_FLOOD_NAMES ?? 100000);
const CACHE_BYTES = Number(process.env.PGFEED_FLOOD_CACHE_BYTES ?? 4 * 1024 * 1024);
// What a process holds beside its channel cache while this client floods it:
// the client's connections and their answers, allocator slack. Stated here,
// asserted below, and the README's formula names the same parts.
const SLACK_KIB = 8 * 1024;
const WORKERS = 32;
const LONG_POLLS_AT_ONCE = 128; // held beside the workers, so their wait costs no throughput
const CHANNELS_PER_REQUEST = 8;
const prefix = unique('flood');

let d;
let root;
after(() => {
  try {
    process.kill(d.pid, 'SIGKILL');
  } catch {}
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

const get = (pathInfo, query = '', timeoutMs = 10000) => timedGet(d.socket, pathInfo, query, timeoutMs);

async function metricsNow() {
  const a = await get('/_metrics');
  assert.equal(a.status, 200, `/_metrics: ${a.status} ${a.body}`);
  return parseMetrics(a.body);
}

// One request of the plan: its names, and how it asks for them.
function* plan() {
  let n = 0;
  let i = 0;
  const name = () => `${prefix}.${(n++).toString(36)}${randomBytes(4).toString('hex')}`;
  while (n < NAMES) {
    const kind = i++ % 10;
    if (kind === 0) {
      // one channel in the path, from the oldest
      yield { path: `/${name()}`, query: '' };
      continue;
    }
    const k = Math.min(CHANNELS_PER_REQUEST, NAMES - n);
    const names = Array.from({ length: k }, name);
    const channels = names.map((c) => `channel=${c}`).join('&');
    if (kind === 1) yield { path: '/', query: `${channels}&since=now&wait=1`, long: true };
    else if (kind <= 4) yield { path: '/', query: `${channels}&since=now` };
    else yield { path: '/', query: `${channels}&since=0` };
  }
}

test('100,000 random channel names from one client: bounded memory, batched head loads, a probe that keeps answering', async (t) => {
  root = makeRoot('flood');
  d = await startDaemon(root, {
    env: { PGFEED_MAX_WAIT: '5', PGFEED_CACHE_BYTES: String(CACHE_BYTES), PGFEED_LOG_LEVEL: 'warn' },
  });
  const probeCh = `${prefix}.probe`;
  await publish(probeCh, 'p', { n: 1 });
  const warm = await get(`/${probeCh}`);
  assert.equal(warm.status, 200, warm.body);
  // Let the allocator settle on what a served process holds, then take the base.
  for (let i = 0; i < 50; i++) await get(`/${probeCh}`);
  const rssBase = rssKiB(d.pid);
  const before = await metricsNow();

  let flooding = true;
  let peak = rssBase;
  const sampling = (async () => {
    while (flooding) {
      peak = Math.max(peak, rssKiB(d.pid));
      await sleep(20);
    }
  })();

  // The probe: polls and fresh long polls on the known channel, all through the flood.
  const probe = { polls: [], longPolls: 0, refused: [] };
  const probing = (async () => {
    for (let i = 0; flooding; i++) {
      const a = i % 4 === 3 ? await get(`/${probeCh}`, 'since=1&wait=1', 5000) : await get(`/${probeCh}`);
      if (a.status !== 200) probe.refused.push(`${a.status} ${a.body ?? ''}`.slice(0, 200));
      if (i % 4 === 3) probe.longPolls++;
      else probe.polls.push(a.ms);
      await sleep(10);
    }
  })();

  const statuses = new Map();
  const busy = [];
  const unreachable = [];
  const requests = plan();
  const started = Date.now();
  let sent = 0;
  const count = (a) => {
    sent++;
    statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
    if (a.status === 503 && /database is unreachable/.test(a.body)) unreachable.push(a.body);
    else if (a.status === 503) busy.push(a);
  };
  const held = new Set();
  await Promise.all(
    Array.from({ length: WORKERS }, async () => {
      for (let r = requests.next(); !r.done; r = requests.next()) {
        if (!r.value.long) {
          count(await get(r.value.path, r.value.query));
          continue;
        }
        while (held.size >= LONG_POLLS_AT_ONCE) await Promise.race(held);
        const p = get(r.value.path, r.value.query).then(count);
        held.add(p);
        p.finally(() => held.delete(p));
      }
    }),
  );
  await Promise.all(held);
  const floodMs = Date.now() - started;
  flooding = false;
  await Promise.all([sampling, probing]);
  const rssEnd = rssKiB(d.pid);
  const m = await metricsNow();
  const delta = (name) => (m.get(name) ?? 0) - (before.get(name) ?? 0);

  const sorted = [...probe.polls].sort((a, b) => a - b);
  const q = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
  t.diagnostic(
    `${NAMES} names in ${sent} requests over ${floodMs} ms; answers ${JSON.stringify([...statuses])}; ` +
      `RSS base ${rssBase} KiB, peak ${peak} KiB (+${peak - rssBase}), end ${rssEnd} KiB; budget ${CACHE_BYTES / 1024} KiB + ${SLACK_KIB} KiB`,
  );
  t.diagnostic(
    `statements ${delta('pgfeed_database_queries_total')}, head queries ${delta('pgfeed_head_queries_total')} ` +
      `for ${delta('pgfeed_head_loads_total')} head loads; cache ${m.get('pgfeed_cache_bytes')} bytes in ` +
      `${m.get('pgfeed_channels_cached')} channels, ${delta('pgfeed_cache_evictions_total')} evictions, ` +
      `${delta('pgfeed_head_load_rejected_total')} loads refused (queue full)`,
  );
  t.diagnostic(
    `probe: ${probe.polls.length} polls, median ${q(0.5).toFixed(2)} ms, p90 ${q(0.9).toFixed(2)} ms, ` +
      `max ${Math.max(...probe.polls).toFixed(2)} ms; ${probe.longPolls} long polls; refused ${probe.refused.length}`,
  );

  assert.deepEqual(unreachable, [], 'no false "database is unreachable" while the database is up');
  for (const a of busy) {
    assert.equal(a.headers['content-type'], 'application/problem+json');
    assert.match(a.json?.type ?? '', /busy/);
    assert.ok(Number(a.headers['retry-after']) >= 1, 'a busy 503 says when to retry');
  }
  assert.deepEqual([...statuses.keys()].filter((s) => s !== 200 && s !== 503), [], 'only answers or busy 503s');
  assert.deepEqual(probe.refused, [], 'every probe poll and long poll was answered');
  assert.ok(q(0.9) < 250, `probe p90 ${q(0.9).toFixed(2)} ms during the flood`);
  assert.ok(peak - rssBase <= CACHE_BYTES / 1024 + SLACK_KIB, `RSS grew by ${peak - rssBase} KiB`);
  assert.ok(m.get('pgfeed_cache_bytes') <= CACHE_BYTES, 'the cache keeps to its budget once the flood is over');
  const statements = delta('pgfeed_database_queries_total');
  assert.ok(statements * 20 < NAMES, `${statements} statements for ${NAMES} names`);
  assert.deepEqual(crashLines(fs.readFileSync(`${root}/stderr.log`, 'utf8')), []);
});
