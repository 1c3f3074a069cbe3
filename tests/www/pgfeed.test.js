// @ts-check
/**
 * Unit tests of www/pgfeed.js on fake timers and fake transports.
 * Run: node --test tests/www/
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';

import { subscribe, DEFAULTS } from '../../www/pgfeed.js';
import { flush, makeEnv, page, ev } from './fakes.js';

/** @typedef {ReturnType<typeof makeEnv>} Env */

/**
 * Advances the clock timer by timer until a request is waiting for an answer.
 * @param {Env} env
 */
async function nextRequest(env) {
  await flush();
  for (let i = 0; i < 50; i++) {
    const open = env.server.open;
    if (open.length > 0) return open[open.length - 1];
    const delay = env.clock.nextDelay();
    if (delay === Infinity) break;
    await env.clock.advance(delay);
  }
  throw new Error('no request was made');
}

/** @param {{params: URLSearchParams}} req */
const kind = (req) => (req.params.has('wait') ? 'longpoll' : 'poll');

/** A server that holds long polls for `wait` seconds of fake time, then 304. */
function holdingServer(/** @type {Env} */ env) {
  env.server.handler = (req) => {
    if (req.params.has('wait')) env.clock.setTimeout(() => req.respond(304), Number(req.params.get('wait')) * 1000);
  };
}

describe('SSE', () => {
  test('opens at the cursor, delivers events in order and reports live', async () => {
    const env = makeEnv();
    const feed = subscribe('/feed/', 'orders', { ...env.callbacks, since: 41 });
    assert.equal(feed.transport, 'sse');
    assert.equal(feed.status, 'connecting');
    await flush();
    const es = env.ES.instances[0];
    assert.equal(es.url, '/feed/orders?since=41');
    es.open();
    es.message(ev('orders', 42), '42');
    es.message(ev('orders', 43), '43');
    assert.deepEqual(env.events.map((e) => e.version), [42, 43]);
    assert.deepEqual(env.events[0], ev('orders', 42));
    assert.equal(feed.status, 'live');
    assert.equal(feed.cursor, '43');
    assert.deepEqual(env.statuses, [['connecting', 'sse'], ['live', 'sse']]);
    assert.equal(env.server.requests.length, 0, 'a known cursor needs no request');
    feed.close();
  });

  test("since 'now' first learns the head, so the stream starts at a real cursor", async () => {
    const env = makeEnv();
    const feed = subscribe('/feed', 'orders', env.callbacks);
    assert.equal(feed.cursor, null);
    await flush();
    const req = env.server.last;
    assert.equal(req.path, '/feed/orders');
    assert.equal(req.params.get('since'), 'now');
    assert.equal(req.params.has('wait'), false);
    assert.equal(req.headers['If-None-Match'], undefined);
    req.respond(200, page('orders', [], { head: 45 }), { ETag: '"45"' });
    await flush();
    assert.equal(env.ES.instances[0].url, '/feed/orders?since=45');
    assert.equal(feed.cursor, '45');
    feed.close();
  });

  test('dedupes by version: repeats and older versions are dropped', async () => {
    const env = makeEnv();
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 41 });
    await flush();
    const es = env.ES.instances[0];
    es.open();
    for (const v of [42, 42, 41, 43, 40, 43, 44]) es.message(ev('orders', v), String(v));
    assert.deepEqual(env.events.map((e) => e.version), [42, 43, 44]);
    feed.close();
  });

  test('reconnects with since= at the last delivered version, after a jittered delay', async () => {
    const env = makeEnv({ random: () => 0.5 });
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 41 });
    await flush();
    const first = env.ES.instances[0];
    first.open();
    first.message(ev('orders', 42), '42');
    first.error(); // the stream ended (bounded lifetime)
    assert.equal(first.closed, true, 'the client reconnects itself, with since=');
    assert.equal(feed.status, 'live', 'a planned reconnect does not flicker the indicator');
    await env.clock.advance(499);
    assert.equal(env.ES.instances.length, 1);
    await env.clock.advance(1); // 0.5 * 1000 ms
    const second = env.ES.instances[1];
    assert.equal(second.url, '/feed/orders?since=42');
    second.open();
    second.message(ev('orders', 42), '42'); // a server replaying from an older cursor
    second.message(ev('orders', 43), '43');
    assert.deepEqual(env.events.map((e) => e.version), [42, 43]);
    feed.close();
  });

  test("event: reset calls onReset and resumes after the head", async () => {
    const env = makeEnv();
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 5 });
    await flush();
    const es = env.ES.instances[0];
    es.open();
    es.emit('reset', { channel: 'orders', oldest: 20, head: 30, reason: 'pruned' }, '30');
    assert.deepEqual(env.resets, [{ channel: 'orders', oldest: 20, head: 30, reason: 'pruned' }]);
    assert.equal(feed.cursor, '30');
    es.message(ev('orders', 29), '29');
    es.message(ev('orders', 31), '31');
    assert.deepEqual(env.events.map((e) => e.version), [31]);
    feed.close();
  });

  test('forced sse never falls back: a stalled stream is reopened with backoff', async () => {
    const env = makeEnv();
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 1, transport: 'sse' });
    await flush();
    await env.clock.advance(DEFAULTS.stallMs);
    assert.equal(env.ES.instances[0].closed, true);
    assert.equal(feed.transport, 'sse');
    assert.equal(feed.status, 'offline');
    await env.clock.advance(1000);
    assert.equal(env.ES.instances.length, 2);
    assert.equal(env.server.requests.length, 0);
    feed.close();
  });
});

describe('transport ladder', () => {
  test('SSE → long poll when the stream sends no first byte within stallMs', async () => {
    const env = makeEnv();
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 41 });
    await flush();
    await env.clock.advance(DEFAULTS.stallMs - 1);
    assert.equal(env.server.requests.length, 0);
    await env.clock.advance(1);
    assert.equal(env.ES.instances[0].closed, true);
    assert.equal(feed.transport, 'longpoll');
    assert.match(env.errors[0].message, /first byte/);
    const req = env.server.last;
    assert.equal(req.params.get('wait'), '25');
    assert.equal(req.params.get('since'), '41');
    assert.equal(req.headers['If-None-Match'], '"41"');
    req.respond(200, page('orders', [42]), { ETag: '"42"' });
    await flush();
    assert.deepEqual(env.events.map((e) => e.version), [42]);
    assert.equal(feed.status, 'live');
    assert.equal(env.server.last.params.get('since'), '42', 'the next long poll follows at once');
    feed.close();
  });

  test('SSE → long poll when an open stream lags behind the server (buffering proxy)', async () => {
    const env = makeEnv();
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 41 });
    await flush();
    env.ES.instances[0].open();
    await env.clock.advance(DEFAULTS.probeMs);
    const probe = env.server.last;
    assert.equal(probe.params.get('limit'), '1');
    assert.equal(probe.headers['If-None-Match'], '"41"');
    probe.respond(200, page('orders', [42], { head: 44 }), { ETag: '"42"' });
    await env.clock.advance(DEFAULTS.graceMs);
    assert.equal(env.ES.instances[0].closed, true);
    assert.equal(feed.transport, 'longpoll');
    assert.equal(env.server.last.params.get('since'), '41', 'the probe delivers nothing itself');
    feed.close();
  });

  test('an open stream that keeps up with the probe stays on SSE', async () => {
    const env = makeEnv();
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 41 });
    await flush();
    const es = env.ES.instances[0];
    es.open();
    await env.clock.advance(DEFAULTS.probeMs);
    env.server.last.respond(304);
    await env.clock.advance(DEFAULTS.probeMs);
    env.server.last.respond(200, page('orders', [42]), { ETag: '"42"' });
    await env.clock.advance(100);
    es.message(ev('orders', 42), '42'); // published just as the probe ran
    await env.clock.advance(DEFAULTS.graceMs);
    assert.equal(es.closed, false);
    assert.equal(feed.transport, 'sse');
    feed.close();
  });

  test('long poll → short poll after repeated failures while the server answers polls', async () => {
    const env = makeEnv({ EventSource: null });
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 41 });
    assert.equal(feed.transport, 'longpoll', 'without EventSource the ladder starts at long poll');
    const kinds = [];
    for (let i = 0; i < DEFAULTS.maxFailures; i++) {
      const held = await nextRequest(env);
      kinds.push(kind(held));
      held.respond(502, { title: 'Bad Gateway' }); // a proxy that cannot hold requests
      const check = await nextRequest(env);
      kinds.push(kind(check));
      check.respond(304);
    }
    const after = await nextRequest(env);
    kinds.push(kind(after));
    assert.deepEqual(kinds, ['longpoll', 'poll', 'longpoll', 'poll', 'longpoll', 'poll', 'poll']);
    assert.equal(feed.transport, 'poll');
    after.respond(304);
    await flush();
    assert.equal(feed.status, 'polling');
    feed.close();
  });

  test('a server that is down does not push the feed down the ladder', async () => {
    const env = makeEnv({ EventSource: null });
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 41 });
    (await nextRequest(env)).fail();
    for (let i = 0; i < 6; i++) {
      const check = await nextRequest(env);
      check.respond(503, { title: 'Service Unavailable' });
      await flush();
      assert.equal(feed.status, 'offline');
    }
    (await nextRequest(env)).respond(304);
    const held = await nextRequest(env);
    assert.equal(kind(held), 'longpoll');
    assert.equal(feed.transport, 'longpoll');
    feed.close();
  });

  test('a long poll the server answers without holding counts as a failure', async () => {
    const env = makeEnv({ EventSource: null });
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 41 });
    env.server.handler = (req) => req.respond(304); // wait= ignored: instant 304s
    await flush();
    for (let i = 0; i < 20 && feed.transport !== 'poll'; i++) await env.clock.advance(env.clock.nextDelay());
    assert.equal(feed.transport, 'poll');
    assert.match(env.errors[0].message, /without holding/);
    assert.ok(env.server.requests.length < 10, 'no tight request loop');
    feed.close();
  });

  test('a long poll the server holds reports live before its answer', async () => {
    const env = makeEnv({ EventSource: null });
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 41 });
    await nextRequest(env);
    assert.equal(feed.status, 'connecting');
    await env.clock.advance(DEFAULTS.minHoldMs);
    assert.equal(feed.status, 'live');
    assert.deepEqual(env.statuses.at(-1), ['live', 'longpoll']);
    feed.close();
  });

  test('a long poll that is never answered times out after wait plus slack', async () => {
    const env = makeEnv({ EventSource: null });
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 41 });
    const held = await nextRequest(env);
    await env.clock.advance(25_000 + 9_999);
    assert.equal(held.aborted, false);
    await env.clock.advance(1);
    assert.equal(held.aborted, true);
    assert.equal(feed.status, 'offline');
    feed.close();
  });

  test('climbs back to SSE after climbMs and resumes from the cursor', async () => {
    const env = makeEnv();
    holdingServer(env);
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 41 });
    await flush();
    await env.clock.advance(DEFAULTS.stallMs); // SSE stalls → long poll
    assert.equal(feed.transport, 'longpoll');
    const held = env.server.last;
    held.respond(200, page('orders', [42]), { ETag: '"42"' });
    await env.clock.advance(DEFAULTS.climbMs - 1);
    assert.equal(env.ES.instances.length, 1);
    await env.clock.advance(1);
    assert.equal(env.ES.instances.length, 2);
    assert.equal(feed.transport, 'sse');
    assert.equal(env.ES.instances[1].url, '/feed/orders?since=42');
    assert.equal(env.server.open.length, 0, 'the long poll in flight was aborted');
    env.ES.instances[1].open();
    assert.equal(feed.status, 'live');
    feed.close();
  });

  test('setTransport switches at once and keeps the cursor', async () => {
    const env = makeEnv();
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 41 });
    await flush();
    const es = env.ES.instances[0];
    es.open();
    es.message(ev('orders', 42), '42');
    feed.setTransport('poll');
    assert.equal(es.closed, true);
    assert.equal(feed.mode, 'poll');
    assert.equal(feed.transport, 'poll');
    const req = env.server.last;
    assert.equal(kind(req), 'poll');
    assert.equal(req.params.get('since'), '42');
    req.respond(200, page('orders', [42, 43]), { ETag: '"43"' });
    await flush();
    feed.setTransport('auto');
    assert.equal(env.ES.instances[1].url, '/feed/orders?since=43');
    assert.deepEqual(env.events.map((e) => e.version), [42, 43]);
    assert.throws(() => feed.setTransport(/** @type {any} */ ('websocket')), TypeError);
    feed.close();
  });
});

describe('shared caches', () => {
  test('follows the canonical next link, without If-None-Match, and never back to an empty answer', async () => {
    const env = makeEnv({ EventSource: null });
    const delivered = [];
    const feed = subscribe('/feed', 'news', { ...env.callbacks, since: 41, onEvent: (e) => delivered.push(e.version) });
    const first = await nextRequest(env);
    assert.equal(first.path, '/feed/news');
    assert.equal(first.params.get('since'), '41');
    first.respond(200, { ...page('news', [42]), cursor: '42', next: '?since=42&wait=25' },
      { ETag: '"42"', Link: '<?since=42&wait=25>; rel="next"', 'Cache-Control': 'public, max-age=25' });
    const second = await nextRequest(env);
    assert.equal(second.url, '/feed/news?since=42&wait=25', 'the link as given: every client asks the same URL');
    assert.equal(second.headers['If-None-Match'], undefined, 'a cache answers the canonical URL by itself');
    assert.equal(second.init.cache, 'default');
    // An empty answer after the wait: its link moves the round, so the next request is a new URL.
    await env.clock.advance(DEFAULTS.minHoldMs + 1);
    second.respond(200, { ...page('news', [], { head: 42 }), cursor: '42' },
      { ETag: '"42"', Link: '<?since=42&wait=25&round=1>; rel="next"' });
    const third = await nextRequest(env);
    assert.equal(third.url, '/feed/news?since=42&wait=25&round=1');
    // Without a link (a private channel) the client builds its own URL again.
    third.respond(200, { ...page('news', [43]), cursor: '43' }, { ETag: '"43"' });
    const fourth = await nextRequest(env);
    assert.equal(fourth.params.get('since'), '43');
    assert.equal(fourth.params.get('round'), null);
    assert.equal(fourth.headers['If-None-Match'], '"43"');
    assert.deepEqual(delivered, [42, 43]);
    feed.close();
  });
});

describe('backoff', () => {
  test('delays are full jitter: uniform in [0, min(max, base·2^n))', async () => {
    const draws = [0.999, 0, 0.5, 0.999, 0.25, 0.999, 0.999, 0.999, 0.999];
    let i = 0;
    const env = makeEnv({ random: () => draws[i++ % draws.length] });
    /** @type {number[]} */
    const times = [];
    env.server.handler = (req) => {
      times.push(env.clock.now);
      req.respond(503, { title: 'Service Unavailable' });
    };
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 1, transport: 'poll' });
    await flush();
    while (times.length <= draws.length) await env.clock.advance(env.clock.nextDelay());
    const gaps = times.slice(1).map((t, n) => t - times[n]);
    const caps = draws.map((_, n) => Math.min(DEFAULTS.maxBackoffMs, DEFAULTS.backoffMs * 2 ** n));
    assert.deepEqual(gaps, draws.map((r, n) => Math.floor(r * caps[n])));
    for (const [n, gap] of gaps.entries()) assert.ok(gap >= 0 && gap < caps[n]);
    assert.equal(caps.at(-1), DEFAULTS.maxBackoffMs, 'the cap is reached');
    assert.equal(feed.status, 'offline');
    feed.close();
  });

  test('Retry-After is added to the jittered delay; a success resets the backoff', async () => {
    const env = makeEnv({ random: () => 0.5 });
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 1, transport: 'poll' });
    await flush();
    env.server.last.respond(503, { title: 'Service Unavailable' }, { 'Retry-After': '7' });
    await flush();
    assert.equal(env.clock.nextDelay(), 7000 + 500);
    assert.equal(env.errors[0].status, 503);
    assert.equal(env.errors[0].retryAfter, 7);
    (await nextRequest(env)).respond(503);
    await flush();
    assert.equal(env.clock.nextDelay(), 1000, 'second attempt: 0.5 · 2000');
    (await nextRequest(env)).respond(304);
    (await nextRequest(env)).respond(503);
    await flush();
    assert.equal(env.clock.nextDelay(), 500, 'after a success the cap is back to backoffMs');
    feed.close();
  });

  test('after a server restart, clients come back spread out, not in a herd', async () => {
    let seed = 42;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const env = makeEnv({ random });
    const feeds = Array.from({ length: 200 }, () => subscribe('/feed', 'orders', { ...env.callbacks, since: 1 }));
    await flush();
    for (const es of env.ES.instances) es.open();
    for (const es of [...env.ES.instances]) es.error();
    const reconnectAt = [];
    while (env.ES.instances.length < 400) {
      await env.clock.advance(env.clock.nextDelay());
      while (reconnectAt.length < env.ES.instances.length - 200) reconnectAt.push(env.clock.now);
    }
    const perSecondTenth = new Map();
    for (const t of reconnectAt) perSecondTenth.set(Math.floor(t / 100), (perSecondTenth.get(Math.floor(t / 100)) ?? 0) + 1);
    assert.ok(Math.max(...reconnectAt) < 1000);
    assert.ok(Math.max(...perSecondTenth.values()) < 40, 'no 100 ms slot gets more than a fifth of the clients');
    for (const f of feeds) f.close();
  });
});

describe('short poll', () => {
  test('the interval adapts: it grows while quiet and drops back on news', async () => {
    const env = makeEnv();
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 1, transport: 'poll' });
    await flush();
    const gaps = [];
    const answers = [304, 304, 304, 200, 304];
    for (const status of answers) {
      const req = env.server.last;
      if (status === 304) req.respond(304);
      else req.respond(200, page('orders', [2]), { ETag: '"2"' });
      await flush();
      gaps.push(env.clock.nextDelay());
      await env.clock.advance(env.clock.nextDelay());
    }
    assert.deepEqual(gaps, [3000, 4500, 6750, 2000, 3000]);
    assert.equal(env.server.last.headers['If-None-Match'], '"2"');
    feed.close();
  });

  test('the interval stops growing at maxIntervalMs', async () => {
    const env = makeEnv();
    env.server.handler = (req) => req.respond(304);
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 1, transport: 'poll' });
    await flush();
    for (let i = 0; i < 15; i++) await env.clock.advance(env.clock.nextDelay());
    assert.equal(env.clock.nextDelay(), DEFAULTS.maxIntervalMs);
    feed.close();
  });

  test('pauses while the tab is hidden and polls at once when it is shown', async () => {
    const env = makeEnv();
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 1, transport: 'poll' });
    await flush();
    env.server.last.respond(304);
    env.doc.show('hidden');
    await env.clock.advance(10 * 60_000);
    assert.equal(env.server.requests.length, 1, 'no poll while hidden');
    env.doc.show('visible');
    assert.equal(env.server.requests.length, 2, 'polled at once when shown');
    env.server.last.respond(304);
    await flush();
    assert.equal(env.clock.nextDelay(), 3000, 'interval restarts from the minimum');
    env.doc.show('hidden');
    env.doc.show('visible'); // shown again before the timer fired: poll now, once
    assert.equal(env.server.requests.length, 3);
    await env.clock.advance(3000);
    assert.equal(env.server.requests.length, 3, 'the old timer was cancelled');
    feed.close();
  });

  test('showing the tab while a poll is in flight does not double it', async () => {
    const env = makeEnv();
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 1, transport: 'poll' });
    await flush();
    env.doc.show('hidden');
    env.doc.show('visible');
    assert.equal(env.server.requests.length, 1);
    feed.close();
  });

  test('long poll and SSE are not paused by a hidden tab', async () => {
    const env = makeEnv({ EventSource: null });
    env.doc.visibilityState = 'hidden';
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 1 });
    await flush();
    assert.equal(kind(env.server.last), 'longpoll');
    feed.close();
  });

  test('more: true fetches the next page at once', async () => {
    const env = makeEnv();
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 0, transport: 'poll', limit: 2 });
    await flush();
    assert.equal(env.server.last.params.get('limit'), '2');
    env.server.last.respond(200, page('orders', [1, 2], { head: 3, more: true }), { ETag: '"2"' });
    await flush();
    assert.equal(env.server.requests.length, 2);
    assert.equal(env.server.last.params.get('since'), '2');
    env.server.last.respond(200, page('orders', [3]), { ETag: '"3"' });
    await flush();
    assert.deepEqual(env.events.map((e) => e.version), [1, 2, 3]);
    feed.close();
  });
});

describe('gone cursors', () => {
  test('410 calls onReset and the feed resumes after the head', async () => {
    const env = makeEnv();
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 5, transport: 'poll' });
    await flush();
    env.server.last.respond(410, {
      type: 'about:blank', title: 'Gone', status: 410,
      detail: 'events after 5 were pruned', oldest: 20, head: 30,
    });
    await flush();
    assert.deepEqual(env.resets, [{ channel: 'orders', oldest: 20, head: 30, reason: 'pruned' }]);
    assert.equal(env.server.requests.length, 2, 'asks again at once');
    assert.equal(env.server.last.params.get('since'), '30');
    assert.equal(env.errors.length, 0, 'a gone cursor is not an error');
    feed.close();
  });

  test('a feed that went back below the cursor (410, head < cursor) resumes from its new head', async () => {
    const env = makeEnv();
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 500, transport: 'poll' });
    await flush();
    env.server.last.respond(410, { status: 410, channel: 'orders', oldest: 1, head: 12, cursor: 500 });
    await flush();
    assert.deepEqual(env.resets, [{ channel: 'orders', oldest: 1, head: 12, reason: 'reset' }]);
    env.server.last.respond(200, page('orders', [13]), { ETag: '"13"' });
    await flush();
    assert.deepEqual(env.events.map((e) => e.version), [13], 'versions below the old cursor are new again');
    feed.close();
  });

  test('410 on a long poll is handled the same way', async () => {
    const env = makeEnv({ EventSource: null });
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 5 });
    await flush();
    env.server.last.respond(410, { status: 410, channel: 'orders', oldest: 20, head: 30 });
    await flush();
    assert.equal(env.resets.length, 1);
    assert.equal(env.server.last.params.get('since'), '30');
    assert.equal(kind(env.server.last), 'longpoll');
    feed.close();
  });
});

describe('several channels', () => {
  test('one request carries every channel and a name=version cursor', async () => {
    const env = makeEnv();
    const feed = subscribe('/feed', ['orders', 'user:42'], {
      ...env.callbacks, since: 'orders=41,user:42=7', transport: 'poll',
    });
    await flush();
    const req = env.server.last;
    assert.equal(req.path, '/feed/');
    assert.deepEqual(req.params.getAll('channel'), ['orders', 'user:42']);
    assert.equal(req.params.get('since'), 'orders=41,user:42=7');
    assert.equal(req.headers['If-None-Match'], '"orders=41,user:42=7"');
    req.respond(200, {
      channels: { orders: { head: 43, oldest: 1, more: false }, 'user:42': { head: 9, oldest: 1, more: false } },
      events: [ev('orders', 42), ev('user:42', 8), ev('orders', 43), ev('user:42', 9), ev('user:42', 7)],
      cursor: 'orders=43,user:42=9',
    }, { ETag: '"orders=43,user:42=9"' });
    await flush();
    assert.deepEqual(env.events.map((e) => `${e.channel}@${e.version}`), ['orders@42', 'user:42@8', 'orders@43', 'user:42@9']);
    assert.equal(feed.cursor, 'orders=43,user:42=9');
    await env.clock.advance(env.clock.nextDelay());
    assert.equal(env.server.last.params.get('since'), 'orders=43,user:42=9');
    feed.close();
  });

  test('SSE for several channels, and a known cursor survives resolving the others', async () => {
    const env = makeEnv();
    const feed = subscribe('/feed', ['orders', 'user:42'], { ...env.callbacks, since: { orders: 41 } });
    await flush();
    const resolve = env.server.last;
    assert.equal(resolve.params.get('since'), 'now');
    resolve.respond(200, {
      channels: { orders: { head: 50, oldest: 1, more: false }, 'user:42': { head: 9, oldest: 1, more: false } },
      events: [], cursor: 'orders=50,user:42=9',
    }, { ETag: '"orders=50,user:42=9"' });
    await flush();
    const es = env.ES.instances[0];
    assert.equal(es.url, '/feed/?channel=orders&channel=user:42&since=orders=41,user:42=9');
    es.open();
    es.message(ev('user:42', 10), 'orders=41,user:42=10');
    es.message(ev('orders', 42), 'orders=42,user:42=10');
    es.message(ev('elsewhere', 99), 'x');
    assert.equal(feed.cursor, 'orders=42,user:42=10');
    es.emit('reset', { channel: 'user:42', oldest: 30, head: 40 }, 'orders=42,user:42=40');
    assert.deepEqual(env.resets, [{ channel: 'user:42', oldest: 30, head: 40, reason: 'pruned' }]);
    assert.equal(feed.cursor, 'orders=42,user:42=40');
    feed.close();
  });

  test('a 410 that does not name its channel makes every channel relearn its head', async () => {
    const env = makeEnv();
    const feed = subscribe('/feed', ['a', 'b'], { ...env.callbacks, since: 'a=1,b=2', transport: 'poll' });
    await flush();
    env.server.last.respond(410, { status: 410, oldest: 5, head: 9 });
    await flush();
    assert.deepEqual(env.resets, [
      { channel: 'a', oldest: null, head: null, reason: 'pruned' },
      { channel: 'b', oldest: null, head: null, reason: 'pruned' },
    ]);
    assert.equal(env.server.last.params.get('since'), 'now');
    feed.close();
  });
});

describe('close()', () => {
  test('releases the stream, timers and the visibility listener', async () => {
    const env = makeEnv();
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 1 });
    await flush();
    const es = env.ES.instances[0];
    es.open();
    assert.ok(env.clock.pending > 0);
    assert.equal(env.doc.listeners.size, 1);
    feed.close();
    assert.equal(es.closed, true);
    assert.equal(env.clock.pending, 0);
    assert.equal(env.doc.listeners.size, 0);
    assert.equal(feed.status, 'closed');
    assert.equal(feed.transport, null);
    es.message(ev('orders', 2), '2');
    es.error();
    assert.equal(env.events.length, 0, 'nothing is delivered after close');
    assert.deepEqual(env.statuses.at(-1), ['closed', null]);
    feed.close(); // idempotent
  });

  test('aborts a request in flight and leaves no timer, on every transport', async () => {
    for (const transport of /** @type {const} */ (['longpoll', 'poll'])) {
      const env = makeEnv();
      const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 1, transport });
      await flush();
      const req = env.server.last;
      feed.close();
      await flush();
      assert.equal(req.aborted, true, transport);
      assert.equal(env.clock.pending, 0, transport);
      req.respond(200, page('orders', [2]));
      await flush();
      assert.equal(env.events.length, 0);
      assert.equal(env.server.requests.length, 1);
    }
  });

  test('clears the backoff wait and the climb timer', async () => {
    const env = makeEnv();
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 1 });
    await flush();
    await env.clock.advance(DEFAULTS.stallMs); // stall: long poll, climb timer armed
    env.server.last.fail(); // and a failure: backoff wait
    await flush();
    assert.equal(feed.status, 'offline');
    assert.ok(env.clock.pending >= 2);
    feed.close();
    assert.equal(env.clock.pending, 0);
    await env.clock.advance(DEFAULTS.climbMs * 2);
    assert.equal(env.ES.instances.length, 1);
    assert.equal(env.server.requests.length, 1);
  });

  test('closing before the first connection starts nothing', async () => {
    const env = makeEnv();
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 1 });
    feed.close();
    await flush();
    assert.equal(env.ES.instances.length, 0);
    assert.equal(env.server.requests.length, 0);
    assert.equal(env.clock.pending, 0);
  });

  test('onEvent may close the feed mid-page', async () => {
    const env = makeEnv();
    /** @type {any} */
    let feed;
    feed = subscribe('/feed', 'orders', {
      ...env.callbacks, since: 1, transport: 'poll',
      onEvent: (e) => { env.events.push(e); feed.close(); },
    });
    await flush();
    env.server.last.respond(200, page('orders', [2, 3, 4]), { ETag: '"4"' });
    await flush();
    assert.equal(env.events.length, 1);
    assert.equal(env.clock.pending, 0);
    assert.equal(env.server.requests.length, 1);
  });
});

describe('API', () => {
  test('rejects invalid channels, transports and cursors up front', () => {
    const env = makeEnv();
    assert.throws(() => subscribe('/feed', [], env.callbacks), TypeError);
    assert.throws(() => subscribe('/feed', 'has space', env.callbacks), TypeError);
    assert.throws(() => subscribe('/feed', '_health', env.callbacks), TypeError);
    assert.throws(() => subscribe('/feed', 'orders', { ...env.callbacks, transport: /** @type {any} */ ('ws') }), TypeError);
    assert.throws(() => subscribe('/feed', 'orders', { ...env.callbacks, since: 'yesterday' }), TypeError);
    assert.throws(() => subscribe('/feed', 'orders', { ...env.callbacks, since: -1 }), TypeError);
    const noEs = makeEnv({ EventSource: null });
    assert.throws(() => subscribe('/feed', 'orders', { ...noEs.callbacks, transport: 'sse' }), TypeError);
  });

  test('an exception in onEvent is reported and the feed goes on', async (t) => {
    const errors = t.mock.method(console, 'error', () => {});
    const env = makeEnv();
    const feed = subscribe('/feed', 'orders', {
      ...env.callbacks, since: 1,
      onEvent: (e) => { env.events.push(e); if (e.version === 2) throw new Error('app bug'); },
    });
    await flush();
    const es = env.ES.instances[0];
    es.open();
    es.message(ev('orders', 2), '2');
    es.message(ev('orders', 3), '3');
    assert.deepEqual(env.events.map((e) => e.version), [2, 3]);
    assert.equal(errors.mock.callCount(), 1, 'Node has no reportError: console.error');
    assert.equal(errors.mock.calls[0].arguments[0].message, 'app bug');
    feed.close();
  });

  test('one-channel events without a channel field get one', async () => {
    const env = makeEnv();
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 1, transport: 'poll' });
    await flush();
    const { channel, ...bare } = ev('orders', 2);
    env.server.last.respond(200, { ...page('orders', []), head: 2, events: [bare] }, { ETag: '"2"' });
    await flush();
    assert.equal(env.events[0].channel, 'orders');
    feed.close();
  });

  test('the callbacks may use the feed: the first status comes after subscribe returns', async () => {
    const env = makeEnv();
    /** @type {any[]} */
    const seen = [];
    const feed = subscribe('/feed', 'orders', {
      ...env.callbacks, since: 1,
      onStatus: () => seen.push([feed.status, feed.transport]),
    });
    await flush();
    env.ES.instances[0].open();
    assert.deepEqual(seen, [['connecting', 'sse'], ['live', 'sse']]);
    feed.close();
  });
});
