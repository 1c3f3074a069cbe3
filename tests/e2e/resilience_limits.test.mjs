// Limits and shutdown, and departed clients, through nginx in front of a pgfeed
// daemon (apache/nginx-pgfeed.conf; pgfeed --listen, its settings by
// environment):
//   --max-held: the request beyond the limit gets 503 + Retry-After, short
//     polls still work, and room frees up once held requests are answered;
//   SIGTERM: held long polls get their timeout answer at once, streams end
//     cleanly, the process exits;
//   a client that leaves: nginx closes the FastCGI connection and pgfeed
//     frees the held request at once; the same with the connection to pgfeed
//     closed directly (a raw FastCGI client).
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { fcgiGet } from './lib/fcgi_client.mjs';
import { assertFeed, assertProblem, checkWith, etag } from './lib/foundation.mjs';
import { client } from './lib/http.mjs';
import { publish, publishMany, unique } from './lib/pg.mjs';
import { metrics } from './lib/metrics.mjs';
import { openRequest, waitFor } from './lib/resilience.mjs';
import { crashLines, serverFor, startNginx } from './lib/servers.mjs';

const MAX_HELD = 5;
const WAIT = 25; // long polls here would wait this long: every check must finish far sooner

const prefix = unique('res_lim');
/** The describe()'s nginx + pgfeed daemon with these PGFEED_* settings. */
function nginxFor(daemonEnv = {}) {
  return serverFor(() => startNginx({ daemonEnv: { PGFEED_MAX_WAIT: '30', ...daemonEnv } }));
}

function held(base) {
  return metrics(base).then((m) => m.get('pgfeed_held_requests'));
}

function heldIs(base, n) {
  return waitFor(`pgfeed_held_requests == ${n}`, async () => (await held(base)) === n, {
    timeoutMs: 5000,
    describe: async () => `pgfeed_held_requests is ${await held(base)}`,
  });
}

/** Reads `retry:` and data frames of an SSE body. */
function sseFrames(text) {
  return text
    .split('\n\n')
    .filter((f) => f.length)
    .map((f) => Object.fromEntries(f.split('\n').map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)])));
}

describe(`--max-held ${MAX_HELD} (PGFEED_MAX_HELD) through nginx`, () => {
  const server = nginxFor({ PGFEED_MAX_HELD: String(MAX_HELD) });
  const check = checkWith(server);

  check('the request beyond the limit gets 503 + Retry-After; short polls still work; room frees up', async (t) => {
    const http = client(server().base);
    const ch = `${prefix}.held`;
    await publish(ch, 'first', { n: 1 });

    const heldPolls = [];
    for (let i = 0; i < MAX_HELD; i++) heldPolls.push(openRequest(server().base, `/feed/${ch}?since=1&wait=${WAIT}`));
    await heldIs(server().base, MAX_HELD);

    const extra = await http.get(`/feed/${ch}?since=1&wait=${WAIT}`);
    assertProblem(extra, 503, `long poll #${MAX_HELD + 1}`);
    assert.match(extra.headers['retry-after'] ?? '', /^[1-9]\d*$/, `Retry-After on the refused long poll: ${extra.headers['retry-after']}`);
    assert.ok(extra.ms < 2000, `refused at once, not after its wait (${extra.ms} ms)`);
    const stream = await http.get(`/feed/${ch}?since=1`, { Accept: 'text/event-stream' });
    assertProblem(stream, 503, 'an SSE stream beyond the limit');
    assert.match(stream.headers['retry-after'] ?? '', /^[1-9]\d*$/, 'Retry-After on the refused stream');

    const short = assertFeed(await http.get(`/feed/${ch}`), ch, 'a short poll at the limit');
    assert.deepEqual(short.events.map((e) => e.version), [1]);
    const health = await http.get('/feed/_health');
    assert.equal(health.status, 200, `/_health at the limit: ${health.status} ${health.body}`);
    const m = await metrics(server().base);
    assert.equal(m.get('pgfeed_held_rejected_total'), 2, 'pgfeed_held_rejected_total counts both refusals');
    assert.equal(m.get('pgfeed_held_requests'), MAX_HELD, 'the refusals held nothing');

    // Answering the held polls frees their places.
    const published = Date.now();
    await publish(ch, 'second', { n: 2 });
    for (const [i, p] of heldPolls.entries()) {
      const done = await p.done;
      assert.equal(done.status, 200, `held poll ${i}: ${done.status} ${done.body}`);
      assert.deepEqual(JSON.parse(done.body).events.map((e) => e.version), [2], `held poll ${i} gets version 2`);
    }
    t.diagnostic(`the ${MAX_HELD} held polls were answered ${Date.now() - published} ms after the publish`);
    await heldIs(server().base, 0);

    const again = openRequest(server().base, `/feed/${ch}?since=2&wait=${WAIT}`);
    await heldIs(server().base, 1); // accepted and held, not refused
    const more = [];
    for (let i = 1; i < MAX_HELD; i++) more.push(openRequest(server().base, `/feed/${ch}?since=2&wait=${WAIT}`));
    await heldIs(server().base, MAX_HELD);
    assertProblem(await http.get(`/feed/${ch}?since=2&wait=${WAIT}`), 503, 'the limit applies again once full');
    await publish(ch, 'third', { n: 3 });
    for (const p of [again, ...more]) {
      const done = await p.done;
      assert.equal(done.status, 200, `${done.status} ${done.body}`);
      assert.deepEqual(JSON.parse(done.body).events.map((e) => e.version), [3]);
    }
    await heldIs(server().base, 0);
  });
});

describe('SIGTERM with long polls and a stream held', () => {
  const server = nginxFor();
  const check = checkWith(server);

  check('held long polls get their timeout answer at once, the stream ends cleanly, pgfeed exits', async (t) => {
    const http = client(server().base);
    const ch = `${prefix}.term`;
    await publishMany(ch, [{ type: 'a', data: {} }, { type: 'b', data: {} }]);
    const first = await http.get(`/feed/${ch}`);
    assertFeed(first, ch);
    assert.equal(etag(first), '2');

    const plain = [0, 1, 2].map(() => openRequest(server().base, `/feed/${ch}?since=2&wait=${WAIT}`));
    const conditional = [0, 1, 2].map(() => openRequest(server().base, `/feed/${ch}?wait=${WAIT}`, { headers: { 'If-None-Match': '"2"' } }));
    const sse = openRequest(server().base, `/feed/${ch}?since=0`, { headers: { Accept: 'text/event-stream' } });
    const sseHead = await sse.response;
    assert.equal(sseHead.status, 200);
    assert.match(sseHead.headers['content-type'] ?? '', /^text\/event-stream/);
    await waitFor('the stream delivered versions 1 and 2', () => sseFrames(sse.text()).filter((f) => f.data).length === 2, {
      describe: () => JSON.stringify(sse.text()),
    });
    await heldIs(server().base, 7);

    const daemon = server().daemon;
    let exitedAt = null;
    let exit = null;
    daemon.child.on('exit', (code, signal) => {
      exitedAt = Date.now();
      exit = { code, signal };
    });
    const sent = Date.now();
    process.kill(daemon.pid, 'SIGTERM');

    for (const [i, p] of plain.entries()) {
      const done = await p.done;
      const where = `long poll ${i} (since=2) after SIGTERM: ${done.status} ${done.body}`;
      assert.equal(done.status, 200, where);
      assert.ok(done.clean, `${where}: complete`);
      const body = JSON.parse(done.body);
      assert.deepEqual(body.events, [], where);
      assert.equal(body.head, 2, where);
      assert.equal(done.headers.etag, '"2"', `${where}: ETag`);
      assert.ok(Date.now() - sent < 2000, `${where}: answered ${Date.now() - sent} ms after SIGTERM`);
    }
    for (const [i, p] of conditional.entries()) {
      const done = await p.done;
      const where = `conditional long poll ${i} (If-None-Match "2") after SIGTERM: ${done.status} ${done.body}`;
      assert.equal(done.status, 304, where);
      assert.equal(done.headers.etag, '"2"', `${where}: ETag`);
    }
    const pollsMs = Date.now() - sent;
    const ended = await sse.done;
    const sseMs = Date.now() - sent;
    assert.ok(ended.clean, `the stream ended cleanly (complete chunked body), not cut: ${ended.error?.message}`);
    assert.ok(sseMs < 2000, `the stream ended ${sseMs} ms after SIGTERM`);
    const frames = sseFrames(ended.body);
    assert.equal(frames[0].retry, '2000', `the stream began with retry: ${JSON.stringify(frames[0])}`);
    assert.deepEqual(frames.filter((f) => f.data).map((f) => [f.id, JSON.parse(f.data).version]), [['1', 1], ['2', 2]]);

    await waitFor('pgfeed exits', () => exitedAt !== null, { timeoutMs: 6000 });
    const exitMs = exitedAt - sent;
    assert.deepEqual(exit, { code: 0, signal: null }, 'pgfeed exits with status 0');
    assert.ok(exitMs < 3000, `pgfeed exited ${exitMs} ms after SIGTERM (nothing was left to wait for)`);
    const log = server().logsSince();
    assert.match(log, /stopping: answering 7 held requests/, 'pgfeed logged its shutdown');
    assert.deepEqual(crashLines(log), []);
    t.diagnostic(`after SIGTERM: long polls answered within ${pollsMs} ms, stream ended at ${sseMs} ms, exit at ${exitMs} ms`);
  });
});

describe('departed clients', () => {
  const server = nginxFor();
  const check = checkWith(server);

  check('a client leaving nginx frees its held long poll or stream at once', async (t) => {
    const http = client(server().base);
    const ch = `${prefix}.gone`;
    await publish(ch, 'x', {});
    const before = (await metrics(server().base)).get('pgfeed_departed_clients_total');
    const polls = Array.from({ length: 10 }, () => openRequest(server().base, `/feed/${ch}?since=1&wait=${WAIT}`));
    const sse = openRequest(server().base, `/feed/${ch}?since=1`, { headers: { Accept: 'text/event-stream' } });
    assert.equal((await sse.response).status, 200);
    await heldIs(server().base, 11);

    const left = Date.now();
    for (const p of [...polls, sse]) p.abort();
    await waitFor('pgfeed frees the 11 departed requests', async () => {
      const m = await metrics(server().base);
      return m.get('pgfeed_held_requests') === 0 && m.get('pgfeed_departed_clients_total') === before + 11;
    }, {
      timeoutMs: 1000,
      everyMs: 20,
      describe: async () => {
        const m = await metrics(server().base);
        return `held ${m.get('pgfeed_held_requests')}, departed ${m.get('pgfeed_departed_clients_total') - before}`;
      },
    });
    t.diagnostic(`freed ${Date.now() - left} ms after the clients left`);

    // The process is none the worse: the channel still serves and wakes.
    const next = openRequest(server().base, `/feed/${ch}?since=1&wait=${WAIT}`);
    await heldIs(server().base, 1);
    await publish(ch, 'y', {});
    const done = await next.done;
    assert.equal(done.status, 200, done.body);
    assert.deepEqual(JSON.parse(done.body).events.map((e) => e.version), [2]);
    assert.equal((await http.get('/feed/_health')).status, 200);
  });

  check('closing the FastCGI connection itself frees the held request at once', async (t) => {
    const ch = `${prefix}.rawgone`;
    await publish(ch, 'x', {});
    const socket = server().daemon.socket;

    // The raw client works: a long poll held on the socket is answered by a publish.
    const control = fcgiGet(socket, `/${ch}`, { query: `since=1&wait=${WAIT}` });
    await heldIs(server().base, 1);
    await publish(ch, 'y', {});
    const answered = await control.done;
    assert.equal(answered.status, 200, answered.body);
    assert.equal(answered.ended, true, 'pgfeed ended the request with FCGI_END_REQUEST');
    assert.deepEqual(JSON.parse(answered.body).events.map((e) => e.version), [2]);
    await heldIs(server().base, 0);

    const before = (await metrics(server().base)).get('pgfeed_departed_clients_total');
    const polls = Array.from({ length: 8 }, () => fcgiGet(socket, `/${ch}`, { query: `since=2&wait=${WAIT}` }));
    const stream = fcgiGet(socket, `/${ch}`, { query: 'since=2', headers: { Accept: 'text/event-stream' } });
    await heldIs(server().base, 9);
    const left = Date.now();
    for (const p of [...polls, stream]) p.abort();
    await waitFor('pgfeed frees the 9 requests whose connection closed', async () => {
      const m = await metrics(server().base);
      return m.get('pgfeed_held_requests') === 0 && m.get('pgfeed_departed_clients_total') === before + 9;
    }, {
      timeoutMs: 1000,
      everyMs: 20,
      describe: async () => {
        const m = await metrics(server().base);
        return `held ${m.get('pgfeed_held_requests')}, departed ${m.get('pgfeed_departed_clients_total') - before}`;
      },
    });
    t.diagnostic(`freed ${Date.now() - left} ms after the connections closed`);
    for (const p of polls) assert.equal((await p.done).status, null, 'nothing was written to a held poll');
    await sleep(100);
    assert.deepEqual(crashLines(server().logsSince()), []);
  });
});
