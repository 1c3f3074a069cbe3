// The fault soak (issue 9). Publishers write at a steady rate to several
// channels; long-poll and SSE clients follow them through lighttpd (which
// spawns pgfeed, apache/lighttpd-pgfeed.conf); faults are injected in turn:
// PostgreSQL restarts, kill -9 of pgfeed (lighttpd spawns a new one), lighttpd
// restarts, clients cut mid-answer, pgfeed's database connections killed with
// pg_terminate_backend. Every client checks its versions: at the end each must
// have seen every version of its channel exactly once. RSS of pgfeed is
// sampled after warm-up. Prints the counts.
//
// In the suite it runs briefly (PGFEED_SOAK_SECONDS, default 40). The soak
// proper, 11 minutes with a fault every 5 s (>= 100 faults):
//   PGFEED_SOAK_SECONDS=660 PGFEED_SOAK_FAULT_MS=5000 \
//     ctest --test-dir build/test -R e2e_fault_soak -V
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { sql, unique } from './lib/pg.mjs';
import { cluster } from './lib/resilience.mjs';
import { rssKiB, SseParser } from './lib/sse_probe.mjs';
import { crashLines, startLighttpd } from './lib/servers.mjs';

const SECONDS = Number(process.env.PGFEED_SOAK_SECONDS ?? 40);
const FAULT_MS = Number(process.env.PGFEED_SOAK_FAULT_MS ?? 2500);
const CHANNELS = 4;
const WARM_UP_MS = 8000; // a (re)started pgfeed's RSS counts from then on
const PUBLISH_MS = 200; // per channel
const LONG_POLLS_PER_CHANNEL = 3;
const STREAMS_PER_CHANNEL = 3;
const prefix = unique('soak');
const channels = Array.from({ length: CHANNELS }, (_, i) => `${prefix}.c${i}`);
const SERVER_ENV = { PGFEED_PRUNE_INTERVAL: '0', PGFEED_SSE_LIFETIME: '20', PGFEED_HEARTBEAT: '5', PGFEED_MAX_WAIT: '10' };

let server;
let stopping = false;
const crashes = [];
after(async () => {
  stopping = true;
  if (server) {
    await server.stop();
    server.cleanup();
  }
});

/** One psql session per channel, publishing every PUBLISH_MS; respawned when the database drops it. */
function publisher(channel) {
  let child = null;
  let timer = null;
  let stopped = false;
  const start = () => {
    if (stopping || stopped) return;
    child = spawn('psql', ['-X', '-q'], { env: process.env, stdio: ['pipe', 'ignore', 'ignore'] });
    child.stdin.on('error', () => {});
    child.on('exit', () => {
      child = null;
      if (!stopping && !stopped) setTimeout(start, 200);
    });
  };
  start();
  timer = setInterval(() => {
    if (child?.stdin.writable) child.stdin.write(`SELECT pgfeed.publish('${channel}', 'tick', '{}');\n`);
  }, PUBLISH_MS);
  return {
    stop: () =>
      new Promise((resolve) => {
        stopped = true; // its psql exiting now must not respawn it
        clearInterval(timer);
        if (!child) return resolve();
        child.on('exit', resolve);
        child.stdin.end();
      }),
  };
}

/** Versions a client saw: duplicates and gaps are counted as they happen, checked at the end. */
class Tracker {
  constructor(channel, kind) {
    this.channel = channel;
    this.kind = kind;
    this.last = 0;
    this.seen = new Map();
    this.deliveries = 0;
    this.gone = 0;
  }

  take(version) {
    this.deliveries++;
    this.seen.set(version, (this.seen.get(version) ?? 0) + 1);
    if (version > this.last) this.last = version;
  }

  result(head) {
    let lost = 0;
    let duplicated = 0;
    for (let v = 1; v <= head; v++) {
      const n = this.seen.get(v) ?? 0;
      if (n === 0) lost++;
      if (n > 1) duplicated += n - 1;
    }
    return { lost, duplicated };
  }
}

/** A long-poll client: since=<last>&wait=10 in a loop, retrying after errors; cut() aborts the current one. */
function longPoller(channel) {
  const t = new Tracker(channel, 'long poll');
  let current = null;
  const once = () =>
    new Promise((resolve) => {
      const url = new URL(server.base);
      const req = http.get({ host: url.hostname, port: url.port, path: `/feed/${channel}?since=${t.last}&wait=10`, agent: false, timeout: 20000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => {
          if (res.statusCode === 200) {
            try {
              for (const e of JSON.parse(body).events) t.take(e.version);
            } catch {}
          } else if (res.statusCode === 410) t.gone++;
          resolve(res.statusCode);
        });
        res.on('error', () => resolve('cut'));
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve('error'));
      current = req;
    });
  const loop = (async () => {
    while (!stopping && !t.done) {
      const status = await once();
      if (status !== 200 && status !== 304) await sleep(200);
    }
  })();
  return { tracker: t, loop, cut: () => current?.destroy() };
}

/** An SSE client: resumes with Last-Event-ID after every end or break. */
function streamer(channel) {
  const t = new Tracker(channel, 'sse');
  let current = null;
  const once = () =>
    new Promise((resolve) => {
      const url = new URL(server.base);
      const headers = { Accept: 'text/event-stream' };
      if (t.last > 0) headers['Last-Event-ID'] = String(t.last);
      const req = http.get({ host: url.hostname, port: url.port, path: `/feed/${channel}?since=0`, headers, agent: false }, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          res.on('end', () => resolve(res.statusCode));
          return;
        }
        const parser = new SseParser((item) => {
          if (item.kind === 'event' && item.data) {
            try {
              t.take(JSON.parse(item.data).version);
            } catch {}
          }
        });
        res.setEncoding('utf8');
        res.on('data', (d) => parser.push(d));
        res.on('close', () => resolve('ended'));
        res.on('error', () => resolve('cut'));
      });
      req.on('error', () => resolve('error'));
      current = req;
    });
  const loop = (async () => {
    while (!stopping && !t.done) {
      await once();
      await sleep(100);
    }
  })();
  return { tracker: t, loop, cut: () => current?.destroy() };
}

test(`fault soak: ${SECONDS} s, a fault every ${FAULT_MS} ms`, { timeout: (SECONDS + 240) * 1000 }, async (t) => {
  for (const ch of channels) await sql(`SELECT pgfeed.publish('${ch}', 'start', '{}')`);
  server = await startLighttpd({ env: SERVER_ENV });
  const publishers = channels.map(publisher);
  const clients = [];
  for (const ch of channels) {
    for (let i = 0; i < LONG_POLLS_PER_CHANNEL; i++) clients.push(longPoller(ch));
    for (let i = 0; i < STREAMS_PER_CHANNEL; i++) clients.push(streamer(ch));
  }

  const faults = { 'pg restart': 0, 'kill -9 pgfeed': 0, 'lighttpd restart': 0, 'clients cut': 0, 'pg_terminate_backend': 0 };
  const kinds = Object.keys(faults);
  const rss = [];
  const started = Date.now();
  let pgfeedSince = Date.now(); // the running pgfeed's age, for warm-up
  let n = 0;
  while (Date.now() - started < SECONDS * 1000) {
    await sleep(FAULT_MS);
    const kind = kinds[n++ % kinds.length];
    const pids = server.pgfeedPids();
    if (pids.length && Date.now() - pgfeedSince > WARM_UP_MS) {
      for (const pid of pids) {
        try {
          rss.push(rssKiB(pid));
        } catch {}
      }
    }
    try {
      if (kind === 'pg restart') {
        await cluster('restart');
      } else if (kind === 'kill -9 pgfeed') {
        for (const pid of pids) process.kill(pid, 'SIGKILL');
        pgfeedSince = Date.now();
      } else if (kind === 'lighttpd restart') {
        crashes.push(...crashLines(server.logsSince()));
        await server.stop();
        server.cleanup();
        server = await startLighttpd({ env: SERVER_ENV });
        pgfeedSince = Date.now();
      } else if (kind === 'clients cut') {
        for (let i = 0; i < 3; i++) clients[Math.floor(Math.random() * clients.length)].cut();
      } else {
        await sql(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND query ~ '(LISTEN pgfeed|pgfeed\\.read|pgfeed\\.sequence|pg_try_advisory_lock|pg_notification_queue_usage)'`,
        );
      }
      faults[kind]++;
    } catch (err) {
      t.diagnostic(`fault ${kind} failed: ${err.message}`);
    }
  }

  // Stop publishing, then give every client time to reach its channel's head.
  await Promise.all(publishers.map((p) => p.stop()));
  const heads = new Map();
  for (const ch of channels) heads.set(ch, Number(await sql(`SELECT head FROM pgfeed.channel WHERE name = '${ch}'`)));
  const deadline = Date.now() + 60000;
  while (Date.now() < deadline && clients.some((c) => c.tracker.last < heads.get(c.tracker.channel))) await sleep(200);
  for (const c of clients) {
    c.tracker.done = true;
    c.cut();
  }
  stopping = true;
  await Promise.all(clients.map((c) => c.loop));

  let deliveries = 0;
  let lost = 0;
  let duplicated = 0;
  let gone = 0;
  const bad = [];
  for (const c of clients) {
    const r = c.tracker.result(heads.get(c.tracker.channel));
    deliveries += c.tracker.deliveries;
    lost += r.lost;
    duplicated += r.duplicated;
    gone += c.tracker.gone;
    if (r.lost || r.duplicated) bad.push(`${c.tracker.kind} on ${c.tracker.channel}: ${r.lost} lost, ${r.duplicated} duplicated, last ${c.tracker.last} of ${heads.get(c.tracker.channel)}`);
  }
  const totalFaults = Object.values(faults).reduce((a, b) => a + b, 0);
  const published = [...heads.values()].reduce((a, b) => a + b, 0);
  const rssText = rss.length ? `RSS after warm-up ${Math.min(...rss)}..${Math.max(...rss)} KiB over ${rss.length} samples` : 'no RSS sample after warm-up';
  const summary =
    `soak ${Math.round((Date.now() - started) / 1000)} s: faults ${totalFaults} (${Object.entries(faults).map(([k, v]) => `${k} ${v}`).join(', ')}); ` +
    `published ${published} events on ${CHANNELS} channels; clients ${clients.length}; deliveries ${deliveries}; lost ${lost}; duplicated ${duplicated}; 410s ${gone}; ${rssText}`;
  t.diagnostic(summary);
  process.stdout.write(`${summary}\n`);
  crashes.push(...crashLines(server.logsSince()));
  // lighttpd logs the kill -9s this soak itself sends; anything else is a crash.
  const unexpected = crashes.filter((line) => !/child signalled: 9$/.test(line));
  assert.deepEqual(bad, [], 'every client saw every version exactly once');
  assert.deepEqual(unexpected, []);
  if (rss.length >= 4) assert.ok(Math.max(...rss) < Math.min(...rss) * 2 + 8192, rssText);
});
