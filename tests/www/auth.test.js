// @ts-check
/**
 * Unit tests of www/pgfeed.js: tokens (Authorization: Bearer, refresh on
 * 401 and `event: auth`), 403 per channel, withCredentials, and the
 * `degraded` status, on fake timers and fake transports.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';

import { subscribe } from '../../www/pgfeed.js';
import { flush, makeEnv, page, ev } from './fakes.js';

/** Lets a streamed chunk travel through the body reader. */
async function settle() {
  for (let i = 0; i < 5; i++) await flush();
}

/** @param {any} event */
const frame = (event) => `id: ${event.version}\ndata: ${JSON.stringify(event)}\n\n`;

describe('tokens', () => {
  test('a token goes out as Authorization: Bearer on polls, and the stream is read with fetch', async () => {
    const env = makeEnv();
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, token: 'T1' });
    await flush();
    const resolve = env.server.last;
    assert.equal(resolve.headers.Authorization, 'Bearer T1');
    resolve.respond(200, page('orders', [], { head: 5 }), { ETag: '"5"' });
    await settle();
    assert.equal(env.ES.instances.length, 0, 'no EventSource: it cannot send the header');
    const stream = env.server.last;
    assert.equal(stream.url, '/feed/orders?since=5');
    assert.equal(stream.headers.Accept, 'text/event-stream');
    assert.equal(stream.headers.Authorization, 'Bearer T1');
    const body = stream.stream();
    await settle();
    assert.equal(feed.status, 'live');
    body.send(': hb\n\n' + frame(ev('orders', 6)).slice(0, 10));
    await settle();
    assert.equal(env.events.length, 0, 'half a frame is not an event');
    body.send(frame(ev('orders', 6)).slice(10) + frame(ev('orders', 7)));
    await settle();
    assert.deepEqual(env.events.map((e) => e.version), [6, 7]);
    feed.close();
    await settle();
    assert.equal(stream.aborted || stream.settled, true);
  });

  test('401: the token function is asked once more and the feed resumes at once from its cursor', async () => {
    const env = makeEnv();
    let n = 0;
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 10, transport: 'longpoll', token: async () => `T${++n}` });
    await settle();
    assert.equal(env.server.last.headers.Authorization, 'Bearer T1');
    env.server.last.respond(200, page('orders', [11]), { ETag: '"11"' });
    await settle();
    const held = env.server.last;
    assert.equal(held.params.get('since'), '11');
    held.respond(401, { title: 'Unauthorized', detail: 'the token has expired' }, { 'WWW-Authenticate': 'Bearer' });
    await settle();
    const retried = env.server.last;
    assert.notEqual(retried, held, 'retried without waiting');
    assert.equal(retried.headers.Authorization, 'Bearer T2');
    assert.equal(retried.params.get('since'), '11');
    assert.equal(env.errors[0].status, 401);
    retried.respond(200, page('orders', [12]), { ETag: '"12"' });
    await settle();
    assert.deepEqual(env.events.map((e) => e.version), [11, 12]);
    assert.equal(n, 2);
    feed.close();
  });

  test('a token refused again backs off instead of looping', async () => {
    const env = makeEnv({ random: () => 0.99 });
    let n = 0;
    env.server.handler = (req) => req.respond(401, { title: 'Unauthorized' });
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 1, transport: 'longpoll', token: () => `T${++n}` });
    await settle();
    await env.clock.advance(60_000);
    // 1 s, 2 s, 4 s, ... of backoff between pairs of tries: a handful in a minute.
    assert.ok(env.server.requests.length <= 14, `${env.server.requests.length} requests in a minute`);
    assert.ok(env.server.requests.length >= 4);
    assert.equal(feed.status, 'offline');
    for (let i = 1; i < env.server.requests.length; i += 2) {
      assert.notEqual(env.server.requests[i].headers.Authorization, env.server.requests[i - 1].headers.Authorization, 'each retry asks for a fresh token');
    }
    feed.close();
  });

  test('SSE event: auth fetches a fresh token and reconnects from the cursor at once', async () => {
    const env = makeEnv();
    let n = 0;
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 3, token: async () => `T${++n}` });
    await settle();
    const first = env.server.last;
    const body = first.stream();
    await settle();
    body.send(frame(ev('orders', 4)) + 'event: auth\ndata: {"reason":"expired"}\n\n');
    await settle();
    const second = env.server.last;
    assert.notEqual(second, first);
    assert.equal(second.url, '/feed/orders?since=4');
    assert.equal(second.headers.Authorization, 'Bearer T2');
    const body2 = second.stream();
    await settle();
    body2.send(frame(ev('orders', 4)) + frame(ev('orders', 5)));
    await settle();
    assert.deepEqual(env.events.map((e) => e.version), [4, 5]);
    assert.equal(env.errors.length, 0, 'an announced expiry is not an error');
    feed.close();
  });

  test('a stream answered 401 refreshes the token once, like a poll', async () => {
    const env = makeEnv();
    let n = 0;
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 3, transport: 'sse', token: () => `T${++n}` });
    await settle();
    env.server.last.respond(401, { title: 'Unauthorized' });
    await settle();
    assert.equal(env.server.requests.length, 2);
    assert.equal(env.server.last.headers.Authorization, 'Bearer T2');
    feed.close();
  });
});

describe('403', () => {
  test('drops the channel the answer names, reports it, and goes on with the others', async () => {
    const env = makeEnv();
    const feed = subscribe('/feed', ['orders', 'user:bob'], { ...env.callbacks, since: 1, transport: 'longpoll' });
    await settle();
    env.server.last.respond(403, { title: 'Forbidden', status: 403, detail: 'not allowed to read user:bob', channel: 'user:bob' });
    await settle();
    assert.equal(env.errors.length, 1);
    assert.equal(env.errors[0].status, 403);
    assert.equal(env.errors[0].channel, 'user:bob');
    const next = env.server.last;
    assert.equal(next.url, '/feed/orders?since=1&wait=25');
    assert.deepEqual(feed.channels, ['orders']);
    feed.close();
  });

  test('a 403 on the only channel stops the feed: no retry, ever', async () => {
    const env = makeEnv();
    const feed = subscribe('/feed', 'user:bob', { ...env.callbacks, since: 1, transport: 'poll' });
    await settle();
    env.server.last.respond(403, { title: 'Forbidden' });
    await settle();
    await env.clock.advance(600_000);
    assert.equal(env.server.requests.length, 1);
    assert.equal(feed.status, 'closed');
    assert.equal(env.errors[0].channel, 'user:bob');
    assert.equal(env.clock.pending, 0);
  });
});

describe('withCredentials', () => {
  test('sends cookies cross-origin on fetch and EventSource', async () => {
    const env = makeEnv();
    const feed = subscribe('https://feeds.example/feed', 'orders', { ...env.callbacks, withCredentials: true });
    await flush();
    assert.equal(env.server.last.init.credentials, 'include');
    env.server.last.respond(200, page('orders', [], { head: 2 }), { ETag: '"2"' });
    await flush();
    assert.deepEqual(env.ES.instances[0].init, { withCredentials: true });
    assert.equal(env.ES.instances[0].url, 'https://feeds.example/feed/orders?since=2');
    feed.close();
  });
});

describe('degraded', () => {
  test('SSE event: status says the database is down, then up again', async () => {
    const env = makeEnv();
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 1 });
    await flush();
    const es = env.ES.instances[0];
    es.open();
    es.emit('status', { database: 'down' });
    assert.equal(feed.status, 'degraded');
    es.emit('status', { database: 'up' });
    assert.equal(feed.status, 'live');
    assert.deepEqual(env.statuses.map(([s]) => s), ['connecting', 'live', 'degraded', 'live']);
    feed.close();
  });

  test('a long poll answered with database: down is degraded until an answer without it', async () => {
    const env = makeEnv();
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 1, transport: 'longpoll' });
    await flush();
    await env.clock.advance(25_000);
    env.server.last.respond(200, { ...page('orders', [], { head: 1 }), database: 'down' }, { ETag: '"1"' });
    await flush();
    assert.equal(feed.status, 'degraded');
    await env.clock.advance(2_000); // the next poll is held: still degraded, not 'live'
    assert.equal(feed.status, 'degraded');
    await env.clock.advance(1_000);
    env.server.last.respond(200, page('orders', [2]), { ETag: '"2"' });
    await flush();
    assert.equal(feed.status, 'live');
    feed.close();
  });

  test('a conditional long poll timing out with Pgfeed-Database: down (a 304) is degraded', async () => {
    const env = makeEnv();
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 1, transport: 'longpoll' });
    await flush();
    await env.clock.advance(25_000);
    env.server.last.respond(304, undefined, { 'Pgfeed-Database': 'down' });
    await flush();
    assert.equal(feed.status, 'degraded');
    await env.clock.advance(25_000);
    env.server.last.respond(304);
    await flush();
    assert.equal(feed.status, 'live');
    feed.close();
  });

  test('503 with database: down is degraded, a plain 503 is offline', async () => {
    const env = makeEnv();
    const feed = subscribe('/feed', 'orders', { ...env.callbacks, since: 1, transport: 'poll' });
    await flush();
    env.server.last.respond(503, { title: 'Service Unavailable', database: 'down' }, { 'Retry-After': '1' });
    await flush();
    assert.equal(feed.status, 'degraded');
    assert.equal(env.errors[0].databaseDown, true);
    await env.clock.advance(env.clock.nextDelay());
    env.server.last.respond(503, { title: 'Service Unavailable' });
    await flush();
    assert.equal(feed.status, 'offline');
    feed.close();
  });
});
