// A real third-party client, the `eventsource` npm package (the WHATWG
// EventSource on fetch, the version tests/package.json pins), against
// pgfeed's SSE:
//   - a plain EventSource with onmessage receives every event published in
//     bursts, in order, once;
//   - it resumes with Last-Event-ID across the stream's planned end (short
//     --sse-lifetime): nothing lost, nothing repeated;
//   - it resumes across a pgfeed restart: the pgfeed process behind lighttpd
//     killed (lighttpd's bin-path spawns a new one as soon as it reaps it), and
//     the daemon behind nginx stopped (SIGTERM) and started again; events
//     published while pgfeed is down all arrive once it is back.
// EventSource fails for good on a non-200 answer (a 502/503 while pgfeed is
// away): the retry: interval (--sse-retry) is what gives pgfeed time to be
// back, and that is what a deployment relies on too.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { afterEach, describe } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { EventSource } from 'eventsource';

import { checkWith } from './lib/foundation.mjs';
import { lit, publish, publishMany, sql, unique } from './lib/pg.mjs';
import { waitFor } from './lib/resilience.mjs';
import { crashLines, serverFor, startDaemon, startLighttpd, startNginx } from './lib/servers.mjs';
import { range } from './lib/sse_probe.mjs';

const HEARTBEAT = 1; // s
const LIFETIME = 3; // s
const RETRY = 1000; // ms

const ES_VERSION = JSON.parse(fs.readFileSync(new URL('../node_modules/eventsource/package.json', import.meta.url), 'utf8')).version;

const prefix = unique('sse_es');
const sources = [];

afterEach(() => {
  for (const s of sources.splice(0)) s.close();
});

/**
 * A plain EventSource on url that records what its user would see (messages
 * through onmessage, open and error events, `reset` events) and, through its
 * fetch option, the Last-Event-ID each (re)connection sent.
 */
function subscribe(url) {
  const log = { messages: [], resets: [], opens: 0, errors: [], requests: [] };
  const es = new EventSource(url, {
    fetch: (input, init) => {
      log.requests.push({ at: Date.now(), lastEventId: init?.headers?.['Last-Event-ID'] ?? null });
      return fetch(input, init);
    },
  });
  es.onopen = () => {
    log.opens++;
  };
  es.onmessage = (e) => {
    log.messages.push({ type: e.type, id: e.lastEventId, json: JSON.parse(e.data), at: Date.now() });
  };
  es.addEventListener('reset', (e) => log.resets.push({ id: e.lastEventId, data: e.data }));
  es.onerror = (e) => {
    log.errors.push({ at: Date.now(), readyState: es.readyState, message: e.message, code: e.code });
  };
  const sub = {
    es,
    log,
    versions: () => log.messages.map((m) => m.json.version),
    close: () => es.close(),
    /** Waits until n messages arrived; fails at once when EventSource gave up. */
    waitMessages: (n, timeoutMs) =>
      waitFor(`${n} messages through onmessage`, () => {
        if (es.readyState === EventSource.CLOSED) {
          throw new Error(`EventSource closed for good (readyState CLOSED): errors ${JSON.stringify(log.errors)}`);
        }
        return log.messages.length >= n;
      }, {
        timeoutMs,
        describe: () =>
          `${log.messages.length} messages (versions ${JSON.stringify(sub.versions())}), readyState ${es.readyState}, ` +
          `opens ${log.opens}, errors ${JSON.stringify(log.errors)}`,
      }),
  };
  sources.push(sub);
  return sub;
}

/** Asserts every message is a plain 'message' whose lastEventId is its version, and versions are 1..n once. */
function assertExactlyOnce(sub, n, channel) {
  assert.deepEqual(sub.versions(), range(1, n), 'every version once, in order');
  for (const m of sub.log.messages) {
    assert.equal(m.type, 'message');
    assert.equal(m.id, String(m.json.version), 'lastEventId is the cursor after the event');
    assert.equal(m.json.channel, channel);
  }
  assert.deepEqual(sub.log.resets, [], 'no reset');
}

/** Asserts each reconnection sent Last-Event-ID equal to the id of the last message before it. */
function assertResumedFromLastId(sub) {
  const { requests, messages } = sub.log;
  for (const r of requests.slice(1)) {
    const before = messages.filter((m) => m.at <= r.at);
    assert.equal(r.lastEventId, before.at(-1)?.id ?? null, `reconnection at ${r.at} sent Last-Event-ID ${r.lastEventId}`);
  }
}

function waitExited(pid, ms = 8000) {
  return waitFor(`pid ${pid} gone`, () => !fs.existsSync(`/proc/${pid}`) || /^State:\s+Z/m.test(readStatus(pid)), { timeoutMs: ms });
}

function readStatus(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return '';
  }
}

describe(`eventsource ${ES_VERSION} (npm) through lighttpd (--sse-lifetime ${LIFETIME}, --sse-retry ${RETRY})`, () => {
  const server = serverFor(() =>
    startLighttpd({
      env: {
        PGFEED_HEARTBEAT: String(HEARTBEAT),
        PGFEED_SSE_LIFETIME: String(LIFETIME),
        PGFEED_SSE_RETRY: String(RETRY),
      },
    }),
  );
  const check = checkWith(server);

  check('onmessage receives every one of 50 events published in bursts', async () => {
    const ch = `${prefix}.bursts`;
    const sub = subscribe(`${server().base}/feed/${ch}?since=0`);
    await waitFor('the EventSource to open', () => sub.log.opens > 0, { timeoutMs: 5000 });
    for (let burst = 0; burst < 5; burst++) {
      await publishMany(ch, range(1, 10).map((i) => ({ type: 'burst', data: { burst, i } })));
      await sleep(50);
    }
    await sub.waitMessages(50, 10000);
    await sleep(300);
    assertExactlyOnce(sub, 50, ch);
    assert.deepEqual(sub.log.messages.map((m) => m.json.data), range(0, 4).flatMap((burst) => range(1, 10).map((i) => ({ burst, i }))));
  });

  // pgfeed formats a one-channel event's frame once and sends the same bytes to
  // every stream at that cursor (feed_sse_memo). Through that path, streams of
  // two channels at the same versions, fed by commits that move both channels
  // at once, get only their own channel's events with ids that are their
  // versions, and a stream of both gets every event of each. (Whether one loop
  // turn serves both channels is up to timing; test_feed_format's
  // test_sse_memo_is_matched_by_content is what holds the memo to content.)
  check('streams of two channels at the same versions each get only their own events; a stream of both gets both', async () => {
    const a = `${prefix}.memo_a`;
    const b = `${prefix}.memo_b`;
    const pair = (round) =>
      sql([a, b, a, b].map((ch, i) => `SELECT pgfeed.publish(${lit(ch)}, 'pair', ${lit(JSON.stringify({ ch, round, i }))}::jsonb);`).join('\n'));
    await pair(1); // a and b at versions 1 and 2, in one transaction
    // Both channels in pgfeed's memory first, so the streams below start from it at once.
    const warm = [a, b].map((ch) => subscribe(`${server().base}/feed/${ch}?since=0`));
    await Promise.all(warm.map((s) => s.waitMessages(2, 5000)));
    const streams = range(1, 24).map((i) => {
      const ch = i % 2 ? a : b;
      return { ch, sub: subscribe(`${server().base}/feed/${ch}?since=0`) };
    });
    const both = subscribe(`${server().base}/feed/?channel=${encodeURIComponent(a)}&channel=${encodeURIComponent(b)}&since=${encodeURIComponent(`${a}=0,${b}=0`)}`);
    await waitFor('the EventSources to open', () => sources.every((s) => s.log.opens > 0), { timeoutMs: 10000 });
    for (let round = 2; round <= 5; round++) {
      await pair(round);
      await sleep(30);
    }
    await Promise.all([...warm, ...streams.map((s) => s.sub)].map((s) => s.waitMessages(10, 10000)));
    await both.waitMessages(20, 10000);
    await sleep(300);
    for (const { ch, sub } of [...warm.map((sub, i) => ({ ch: [a, b][i], sub })), ...streams]) {
      assertExactlyOnce(sub, 10, ch);
      assert.ok(sub.log.messages.every((m) => m.json.data.ch === ch), `${ch}: only its own events: ${JSON.stringify(sub.log.messages.map((m) => m.json.data))}`);
    }
    const cursor = { [a]: 0, [b]: 0 };
    for (const m of both.log.messages) {
      assert.equal(m.json.version, cursor[m.json.channel] + 1, `${m.json.channel} v${m.json.version} follows ${cursor[m.json.channel]}`);
      assert.equal(m.json.data.ch, m.json.channel);
      cursor[m.json.channel] = m.json.version;
      assert.equal(m.id, `${a}=${cursor[a]},${b}=${cursor[b]}`, 'the id names both cursors');
    }
    assert.deepEqual(cursor, { [a]: 10, [b]: 10 }, 'the stream of both got all 20, once');
  });

  check(`it resumes with Last-Event-ID across the stream's planned end (--sse-lifetime ${LIFETIME} s), losing and repeating nothing`, async () => {
    const ch = `${prefix}.lifetime`;
    const sub = subscribe(`${server().base}/feed/${ch}?since=0`);
    await waitFor('the EventSource to open', () => sub.log.opens > 0, { timeoutMs: 5000 });
    let n = 0;
    const until = Date.now() + 2 * LIFETIME * 1000 + RETRY + 500; // two planned ends
    while (Date.now() < until) {
      n = await publish(ch, 'tick', { n: n + 1 });
      await sleep(80);
    }
    await sub.waitMessages(n, 10000);
    await sleep(300);
    assert.ok(sub.log.opens >= 3, `the stream ended and was resumed at least twice (${sub.log.opens} opens, errors ${JSON.stringify(sub.log.errors)})`);
    assertExactlyOnce(sub, n, ch);
    assert.ok(sub.log.requests.slice(1).every((r) => r.lastEventId), `every reconnection sent Last-Event-ID: ${JSON.stringify(sub.log.requests)}`);
    assertResumedFromLastId(sub);
  });

  check('it resumes across a pgfeed crash (SIGKILL; lighttpd spawns a new pgfeed): events published meanwhile arrive once', async () => {
    const ch = `${prefix}.crash`;
    const sub = subscribe(`${server().base}/feed/${ch}?since=0`);
    await publishMany(ch, range(1, 5).map((i) => ({ type: 'before', data: { i } })));
    await sub.waitMessages(5, 5000);

    const [old] = server().pgfeedPids();
    assert.ok(old, 'lighttpd runs a pgfeed');
    // lighttpd spawns a new pgfeed the moment it reaps the old one: held
    // (SIGSTOP) meanwhile, it leaves pgfeed down while the test publishes.
    process.kill(server().child.pid, 'SIGSTOP');
    try {
      process.kill(old, 'SIGKILL');
      await waitExited(old);
      await publishMany(ch, range(6, 15).map((i) => ({ type: 'while-down', data: { i } })));
      assert.deepEqual(server().pgfeedPids(), [], 'the events were published while no pgfeed ran');
    } finally {
      process.kill(server().child.pid, 'SIGCONT');
    }

    await sub.waitMessages(15, 10000);
    await publish(ch, 'after', { i: 16 });
    await sub.waitMessages(16, 5000);
    await sleep(300);
    assertExactlyOnce(sub, 16, ch);
    const now = server().pgfeedPids();
    assert.equal(now.length, 1, `one pgfeed again: ${now}`);
    assert.notEqual(now[0], old, 'a new pgfeed process serves the resumed stream');
    assertResumedFromLastId(sub);
    assert.equal(sub.log.requests.at(-1).lastEventId, '5', 'the reconnection resumed from the last id before the crash');
  });

  check('the server logs show no crash (but the SIGKILL the test sent)', async () => {
    const bad = crashLines(server().logsSince()).filter((l) => !/child signalled: 9\b/.test(l));
    assert.deepEqual(bad, [], `pgfeed misbehaved:\n${bad.join('\n')}`);
  });
});

describe(`eventsource ${ES_VERSION} (npm) through nginx, the pgfeed daemon restarted (--sse-retry ${2 * RETRY})`, () => {
  const restarted = [];
  const daemonEnv = { PGFEED_HEARTBEAT: String(HEARTBEAT), PGFEED_SSE_RETRY: String(2 * RETRY) };
  const server = serverFor(() => startNginx({ daemonEnv }), { onStop: stopRestarted });
  const check = checkWith(server);

  async function stopRestarted() {
    for (const d of restarted) {
      try {
        process.kill(d.pid, 'SIGTERM');
        await waitExited(d.pid);
      } catch {
        try {
          process.kill(d.pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
  }

  check('it resumes across a daemon restart (SIGTERM, started again): events published meanwhile arrive once', async () => {
    const ch = `${prefix}.restart`;
    const sub = subscribe(`${server().base}/feed/${ch}?since=0`);
    await publishMany(ch, range(1, 5).map((i) => ({ type: 'before', data: { i } })));
    await sub.waitMessages(5, 5000);

    const old = server().daemon.pid;
    process.kill(old, 'SIGTERM');
    await waitExited(old);
    const downAt = Date.now();
    await publishMany(ch, range(6, 15).map((i) => ({ type: 'while-down', data: { i } })));
    const daemon = await startDaemon(server().root, { env: daemonEnv });
    restarted.push(daemon);
    assert.ok(Date.now() - downAt < 2 * RETRY, `the daemon was back within the retry interval (${Date.now() - downAt} ms)`);

    await sub.waitMessages(15, 10000);
    await publish(ch, 'after', { i: 16 });
    await sub.waitMessages(16, 5000);
    await sleep(300);
    assertExactlyOnce(sub, 16, ch);
    assertResumedFromLastId(sub);
    assert.equal(sub.log.requests.at(-1).lastEventId, '5', 'the reconnection resumed from the last id before the restart');
    server().logs.push(...daemon.logs.filter((f) => !server().logs.includes(f)));
  });

  check('the server logs show no crash', async () => {
    const bad = crashLines(server().logsSince());
    assert.deepEqual(bad, [], `pgfeed misbehaved:\n${bad.join('\n')}`);
  });
});
