// The FastCGI intake (issue 9): no client can stall a pgfeed process.
//   - the defect: behind Apache mod_proxy_fcgi, a POST that sends a few bytes
//     of its Content-Length froze every feed of the process (libfcgi read the
//     body blocking); a FastCGI connection that sends nothing did the same;
//   - --request-timeout and --max-params close such connections, counted;
//   - the protocol straight to --listen: GET_VALUES, UNKNOWN_TYPE,
//     multiplexing refused, unknown roles, ABORT_REQUEST, FCGI_KEEP_CONN;
//   - --max-connections; the socket's mode, stale and live sockets;
//   - nginx's keepalive pool (apache/nginx-pgfeed.conf) reuses connections.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { begin, encodeParams, getParams, RawConn, record, requestBytes, T } from './lib/fcgi_raw.mjs';
import { assertFeed, assertProblem } from './lib/foundation.mjs';
import { client } from './lib/http.mjs';
import { publish, unique } from './lib/pg.mjs';
import { metrics, parseMetrics } from './lib/metrics.mjs';
import { waitFor } from './lib/resilience.mjs';
import { crashLines, makeRoot, startApacheProxy, startDaemon, startNginx } from './lib/servers.mjs';
import { testEnv } from './lib/env.mjs';
import { readableDir } from './lib/auth.mjs';
import { rssKiB } from './lib/sse_probe.mjs';

const prefix = unique('intake');
const cleanups = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** A pgfeed daemon alone, for raw FastCGI; stopped after the file. */
async function daemon(env = {}, args = []) {
  const root = makeRoot('intake');
  const d = await startDaemon(root, { env, args });
  cleanups.push(async () => {
    try {
      process.kill(d.pid, 'SIGKILL');
    } catch {}
    await sleep(50);
    fs.rmSync(root, { recursive: true, force: true });
  });
  d.root = root;
  d.log = () => fs.readFileSync(path.join(root, 'stderr.log'), 'utf8');
  return d;
}

/** GET over a fresh raw connection; resolves with the answer and its time. */
async function rawGet(socket, pathInfo, query = '', headers = {}) {
  const c = new RawConn(socket);
  const started = process.hrtime.bigint();
  await c.send(requestBytes(1, getParams(pathInfo, { query, headers })));
  const a = await c.answer(1, 5000);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  c.destroy();
  return { ...a, ms };
}

/** /_metrics straight over FastCGI, as a Map like resilience.metrics. */
async function rawMetrics(socket) {
  return parseMetrics((await rawGet(socket, '/_metrics')).body);
}

describe('the defect: a slow client behind Apache mod_proxy_fcgi', () => {
  let server;
  before(async () => {
    // Publishing is never anonymous; the slow POST below never gets as far as its token.
    const files = readableDir('intake');
    const PGFEED_PUBLISH_TOKEN_FILE = files.write('publish-token', `${unique('intake')}-token\n`);
    server = await startApacheProxy({ daemonEnv: { PGFEED_PUBLISH: '1', PGFEED_PUBLISH_TOKEN_FILE } });
    cleanups.push(async () => {
      await server.stop();
      server.cleanup();
      files.cleanup();
    });
  });

  test('a POST that sends 5 of its 1000 bytes, and a silent FastCGI connection, freeze nothing', async (t) => {
    const ch = `${prefix}.freeze`;
    await publish(ch, 'a', { n: 1 });
    const http = client(server.base);
    assertFeed(await http.get(`/feed/${ch}`), ch);

    // The half-sent body: the HTTP client keeps its socket open and says nothing more.
    const url = new URL(server.base);
    const slow = net.connect(Number(url.port), url.hostname);
    slow.on('error', () => {});
    await new Promise((resolve) => slow.once('connect', resolve));
    slow.write(`POST /feed/${ch} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"typ`);
    // And a FastCGI connection to pgfeed that sends nothing at all.
    const silent = new RawConn(server.daemon.socket);
    await silent.connected;
    await sleep(300); // Apache has passed the params on; pgfeed has the connection

    const times = [];
    for (let i = 0; i < 5; i++) {
      const res = await http.get(`/feed/${ch}`, {}, { timeoutMs: 5000 });
      assertFeed(res, ch, `poll ${i} while the slow POST is open`);
      times.push(res.ms);
    }
    const held = fetch(`${server.base}/feed/${ch}?since=1&wait=20`).then(async (r) => ({ status: r.status, body: await r.json() }));
    await sleep(200);
    await publish(ch, 'b', { n: 2 });
    const woke = await held;
    assert.equal(woke.status, 200);
    assert.deepEqual(woke.body.events.map((e) => e.version), [2], 'a long poll still wakes');
    t.diagnostic(`poll times while stalled: ${times.map((ms) => `${ms} ms`).join(', ')}`);
    assert.ok(Math.max(...times) < 1000, `every poll answered at once (${times})`);
    slow.destroy();
    silent.destroy();
  });
});

describe('deadlines and caps (raw FastCGI to --listen)', () => {
  let d;
  before(async () => {
    d = await daemon({ PGFEED_REQUEST_TIMEOUT: '1', PGFEED_MAX_PARAMS: '4096' });
  });

  test('silent, half-params and half-body connections are closed after --request-timeout and counted', async () => {
    const silent = new RawConn(d.socket);
    const half = new RawConn(d.socket);
    const body = new RawConn(d.socket);
    await half.send(Buffer.concat([begin(1), record(T.PARAMS, encodeParams(getParams('/x')).subarray(0, 20))]));
    const post = getParams('/x', { method: 'POST', extra: { CONTENT_LENGTH: '1000', CONTENT_TYPE: 'application/json' } });
    await body.send(Buffer.concat([begin(1), record(T.PARAMS, encodeParams(post)), record(T.PARAMS), record(T.STDIN, Buffer.from('{"ty'))]));
    const started = Date.now();
    // Meanwhile a normal poll answers at once.
    const probe = await rawGet(d.socket, `/${prefix}.deadline`);
    assert.equal(probe.status, 200, probe.body);
    assert.ok(probe.ms < 500, `probe answered in ${probe.ms} ms`);
    for (const [name, c] of [['silent', silent], ['half params', half], ['half body', body]]) {
      assert.ok(await c.closesWithin(3000), `${name}: closed by pgfeed`);
      assert.equal(c.records.length, 0, `${name}: closed without an answer`);
    }
    const ms = Date.now() - started;
    assert.ok(ms >= 800 && ms < 2500, `closed at the 1 s deadline, not before or long after (${ms} ms)`);
    const m = await rawMetrics(d.socket);
    assert.equal(m.get('pgfeed_fastcgi_closed_total{reason="request_timeout"}'), 3);
  });

  test('params over --max-params close the connection, counted; the next request is fine', async () => {
    const c = new RawConn(d.socket);
    const big = getParams('/x', { headers: { 'If-None-Match': 'x'.repeat(5000) } });
    await c.send(Buffer.concat([begin(1), record(T.PARAMS, encodeParams(big))]));
    assert.ok(await c.closesWithin(2000), 'closed');
    assert.equal(c.records.length, 0);
    const m = await rawMetrics(d.socket);
    assert.equal(m.get('pgfeed_fastcgi_closed_total{reason="params_too_large"}'), 1);
  });

  test('protocol: GET_VALUES, UNKNOWN_TYPE, multiplexing refused, unknown role, ABORT_REQUEST', async () => {
    const c = new RawConn(d.socket);
    const names = encodeParams({ FCGI_MAX_CONNS: '', FCGI_MAX_REQS: '', FCGI_MPXS_CONNS: '', OTHER: '' });
    await c.send(Buffer.concat([record(T.GET_VALUES, names, 0), record(42, Buffer.alloc(3), 0)]));
    const values = await c.until(() => c.records.find((r) => r.type === T.GET_VALUES_RESULT));
    assert.ok(values, 'GET_VALUES_RESULT');
    const text = values.content.toString('latin1');
    assert.match(text, /FCGI_MAX_CONNS\d+/);
    assert.match(text, /FCGI_MAX_REQS\d+/);
    assert.match(text, /FCGI_MPXS_CONNS0/);
    assert.doesNotMatch(text, /OTHER/);
    const unknown = await c.until(() => c.records.find((r) => r.type === T.UNKNOWN_TYPE));
    assert.equal(unknown?.content[0], 42, 'UNKNOWN_TYPE names the type');

    // Request 1 in progress; BEGIN for 2 is refused (FCGI_CANT_MPX_CONN = 1); 1 is answered.
    await c.send(Buffer.concat([begin(1, { keep: true }), record(T.PARAMS, encodeParams(getParams('/_health'))), begin(2)]));
    const refused = await c.until(() => c.records.find((r) => r.type === T.END_REQUEST && r.id === 2));
    assert.equal(refused?.content[4], 1, 'CANT_MPX_CONN');
    await c.send(Buffer.concat([record(T.PARAMS), record(T.STDIN)]));
    const a1 = await c.answer(1);
    assert.equal(a1?.status, 200, 'request 1 answered');

    // Kept connection: an authorizer BEGIN is refused with FCGI_UNKNOWN_ROLE = 3, then
    // a request is aborted (END_REQUEST, no answer), then another one is answered.
    await c.send(begin(3, { keep: true, role: 2 }));
    const role = await c.until(() => c.records.find((r) => r.type === T.END_REQUEST && r.id === 3));
    assert.equal(role?.content[4], 3, 'UNKNOWN_ROLE');
    await c.send(Buffer.concat([begin(4, { keep: true }), record(T.ABORT_REQUEST, Buffer.alloc(0), 4)]));
    const aborted = await c.until(() => c.records.find((r) => r.type === T.END_REQUEST && r.id === 4));
    assert.ok(aborted, 'ABORT_REQUEST ends the request');
    assert.equal(c.records.filter((r) => r.type === T.STDOUT && r.id === 4).length, 0, 'nothing answered to the aborted one');
    await c.send(requestBytes(5, getParams('/_health'), { keep: true }));
    assert.equal((await c.answer(5))?.status, 200);
    assert.equal(c.isClosed, false, 'the kept connection stays open');
    c.destroy();
  });

  test('FCGI_KEEP_CONN: ten requests over one connection, each answered in turn', async () => {
    const ch = `${prefix}.keep`;
    await publish(ch, 'a', { n: 1 });
    const c = new RawConn(d.socket);
    for (let id = 1; id <= 10; id++) {
      await c.send(requestBytes(id, getParams(`/${ch}`), { keep: true }));
      const a = await c.answer(id);
      assert.equal(a?.status, 200, `request ${id}`);
      assert.deepEqual(a.json.events.map((e) => e.version), [1]);
    }
    assert.equal(c.isClosed, false);
    // Without FCGI_KEEP_CONN the last one closes it.
    await c.send(requestBytes(11, getParams(`/${ch}`)));
    assert.equal((await c.answer(11))?.status, 200);
    assert.ok(await c.closesWithin(3000), 'closed after a request without FCGI_KEEP_CONN');
    const m = await rawMetrics(d.socket);
    assert.ok(m.get('pgfeed_fastcgi_kept_requests_total') >= 10, `kept requests ${m.get('pgfeed_fastcgi_kept_requests_total')}`);
    assert.deepEqual(crashLines(d.log()), []);
  });
});

// Issue 14: while a request is held on a kept connection pgfeed keeps reading it (EPOLLIN
// stays on, no epoll_ctl per delivery), into the connection's buffer, bounded by --max-params.
describe('a long poll held on a kept connection (read ahead)', () => {
  let d;
  before(async () => {
    d = await daemon({ PGFEED_MAX_PARAMS: '4096', PGFEED_MAX_WAIT: '60' });
  });

  /** A kept connection with a long poll held on ch (since its head 1), extra bytes behind it. */
  async function held(ch, extra = Buffer.alloc(0)) {
    const c = new RawConn(d.socket);
    await c.send(Buffer.concat([requestBytes(1, getParams(`/${ch}`, { query: 'since=1&wait=30' }), { keep: true }), extra]));
    await waitFor('the poll is held', async () => (await rawMetrics(d.socket)).get('pgfeed_held_requests') >= 1);
    return c;
  }

  test('a record sent meanwhile is answered after the answer, and the connection carries the next request', async () => {
    const ch = `${prefix}.ahead`;
    await publish(ch, 'a', { n: 1 });
    const c = await held(ch);
    const names = encodeParams({ FCGI_MPXS_CONNS: '' });
    assert.ok(await c.send(record(T.GET_VALUES, names, 0)));
    await sleep(200);
    assert.equal(c.records.length, 0, 'nothing before the held answer');
    await publish(ch, 'a', { n: 2 });
    const a = await c.answer(1, 5000);
    assert.equal(a?.status, 200);
    assert.deepEqual(a.json.events.map((e) => e.version), [2]);
    const values = await c.until(() => c.records.findIndex((r) => r.type === T.GET_VALUES_RESULT) + 1);
    const end = c.records.findIndex((r) => r.type === T.END_REQUEST);
    assert.ok(values - 1 > end, 'GET_VALUES_RESULT after the END_REQUEST of the held request');
    await c.send(requestBytes(2, getParams(`/${ch}`), { keep: true }));
    const next = await c.answer(2);
    assert.equal(next?.status, 200);
    assert.deepEqual(next.json.events.map((e) => e.version), [1, 2]);
    assert.equal(c.isClosed, false);
    c.destroy();
    assert.deepEqual(crashLines(d.log()), []);
  });

  test('the server hanging up is noticed at once, without a write', async () => {
    const ch = `${prefix}.hangup`;
    await publish(ch, 'a', { n: 1 });
    const before = await rawMetrics(d.socket);
    const c = await held(ch);
    c.destroy();
    const started = Date.now();
    await waitFor('the held poll is gone', async () => (await rawMetrics(d.socket)).get('pgfeed_held_requests') === 0);
    // At once, not at the wait's end (30 s): the bound only allows for a loaded machine.
    assert.ok(Date.now() - started < 3000, `noticed in ${Date.now() - started} ms`);
    const m = await rawMetrics(d.socket);
    assert.equal(m.get('pgfeed_departed_clients_total') - before.get('pgfeed_departed_clients_total'), 1);
  });

  // Once after the request alone; once with 30 kB more than --max-params already behind it in
  // the request's own write (read with it, before the request was held).
  for (const behind of [0, 30000]) {
    test(`more than --max-params bytes while it is held close the connection, counted, with memory flat (${behind} bytes behind the request)`, async () => {
      const ch = `${prefix}.flood${behind}`;
      await publish(ch, 'a', { n: 1 });
      const before = await rawMetrics(d.socket);
      const junk = record(T.STDIN, Buffer.alloc(65535, 'x'), 7);
      const c = await held(ch, behind ? record(T.STDIN, Buffer.alloc(behind, 'y'), 7) : undefined);
      const rssBefore = rssKiB(d.pid);
      // 16 MB of records nobody may send before the answer: pgfeed reads 4,096 bytes of it, then closes.
      for (let i = 0; i < 256 && (await c.send(junk)); i++);
      assert.ok(await c.closesWithin(3000), 'closed by pgfeed');
      assert.equal(c.records.length, 0, 'closed without an answer');
      const rssAfter = rssKiB(d.pid);
      assert.ok(rssAfter - rssBefore < 1024, `RSS ${rssBefore} -> ${rssAfter} KiB`);
      const m = await rawMetrics(d.socket);
      assert.equal(m.get('pgfeed_fastcgi_closed_total{reason="protocol_error"}') - before.get('pgfeed_fastcgi_closed_total{reason="protocol_error"}'), 1);
      assert.equal(m.get('pgfeed_held_requests'), 0);
      // pgfeed serves on.
      const probe = await rawGet(d.socket, `/${ch}`);
      assert.equal(probe.status, 200);
      assert.deepEqual(crashLines(d.log()), []);
    });
  }
});

describe('--max-connections and the socket file', () => {
  test('beyond --max-connections a connection is closed at once, counted; room frees up', async () => {
    const d = await daemon({ PGFEED_MAX_CONNECTIONS: '3' });
    const held = [new RawConn(d.socket), new RawConn(d.socket)];
    await Promise.all(held.map((c) => c.connected));
    await sleep(100);
    // the third is this metrics request's own connection; the fourth is refused
    const extra = new RawConn(d.socket);
    const m0 = new RawConn(d.socket);
    await sleep(100);
    const closed = await Promise.all([extra.closesWithin(1000), m0.closesWithin(1000)]);
    assert.equal(closed.filter(Boolean).length, 1, 'exactly one of the two over the limit was closed');
    for (const c of [extra, m0]) c.destroy();
    for (const c of held) c.destroy();
    await sleep(100);
    const m = await rawMetrics(d.socket);
    assert.equal(m.get('pgfeed_fastcgi_closed_total{reason="max_connections"}'), 1);
    assert.ok(m.get('pgfeed_fds_limit') >= 1024, 'the descriptor limit is shown');
    assert.ok(m.get('pgfeed_fds_margin') > 0, 'and the margin');
  });

  test('the socket is 0660; a live one is refused, a stale one replaced', async () => {
    const d = await daemon();
    const mode = fs.statSync(d.socket).mode & 0o777;
    assert.equal(mode.toString(8), '660');
    const env = testEnv();
    const second = spawnSync(env.bin, ['--listen', d.socket], { env: { ...process.env, ...env.pg }, encoding: 'utf8', timeout: 10000 });
    assert.notEqual(second.status, 0, 'a second pgfeed on a live socket exits');
    assert.match(second.stderr, /another process is listening/);
    assert.ok(fs.existsSync(d.socket), 'and leaves the live socket alone');
    assert.equal((await rawGet(d.socket, '/_health')).status, 200, 'the first one still answers');

    process.kill(d.pid, 'SIGKILL');
    await sleep(200);
    assert.ok(fs.existsSync(d.socket), 'a crash leaves the socket file');
    const again = await startDaemon(d.root, {});
    cleanups.push(() => {
      try {
        process.kill(again.pid, 'SIGKILL');
      } catch {}
    });
    assert.equal((await rawGet(again.socket, '/_health')).status, 200, 'a new pgfeed replaced the stale socket');
    assert.match(fs.readFileSync(path.join(d.root, 'stderr.log'), 'utf8'), /replacing a stale socket/);

    const world = spawnSync(env.bin, ['--listen', path.join(d.root, 'w.sock'), '--socket-mode', '0666'], { env: { ...process.env, ...env.pg }, encoding: 'utf8', timeout: 10000 });
    assert.notEqual(world.status, 0, 'a world-writable mode is refused');
    assert.match(world.stderr, /others cannot write/);
  });
});

describe('nginx keepalive pool (apache/nginx-pgfeed.conf)', () => {
  test('300 successive polls travel over a few FastCGI connections', async (t) => {
    const server = await startNginx();
    cleanups.push(async () => {
      await server.stop();
      server.cleanup();
    });
    const ch = `${prefix}.pool`;
    await publish(ch, 'a', { n: 1 });
    const before = await metrics(server.base);
    // Keep-alive from the browser side too, so nginx's own connection handling is not measured.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const get = (p) =>
      new Promise((resolve, reject) => {
        const req = http.get(`${server.base}${p}`, { agent }, (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode, body }));
        });
        req.on('error', reject);
      });
    const N = 300;
    for (let i = 0; i < N; i += 4) {
      const results = await Promise.all([0, 1, 2, 3].map(() => get(`/feed/${ch}`)));
      for (const r of results) assert.equal(r.status, 200, r.body);
    }
    agent.destroy();
    const m = await metrics(server.base);
    const accepted = m.get('pgfeed_fastcgi_accepted_total') - before.get('pgfeed_fastcgi_accepted_total');
    const kept = m.get('pgfeed_fastcgi_kept_requests_total') - before.get('pgfeed_fastcgi_kept_requests_total');
    t.diagnostic(`${N} polls (+1 metrics) over ${accepted} new FastCGI connections, ${kept} requests on kept ones`);
    assert.ok(accepted <= 20, `few connections: ${accepted}`);
    assert.ok(kept >= N - 20, `most requests on kept connections: ${kept}`);
    // A held request still ends when its client leaves (nginx closes the kept connection).
    assertProblem(await client(server.base).get('/feed/_x'), 404, 'an error over the pool');
    await waitFor('connections settle', async () => (await metrics(server.base)).get('pgfeed_fastcgi_connections') <= 17);
  });
});


/** utime + stime of a process, in clock ticks (/proc/<pid>/stat). */
function cpuTicks(pid) {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

describe('the descriptor limit', () => {
  test('at EMFILE the accept loop pauses instead of spinning, logs once per episode, counts it, recovers', async (t) => {
    const root = makeRoot('intake-emfile');
    const socket = path.join(root, 'pgfeed.sock');
    const env = testEnv();
    const logFile = path.join(root, 'stderr.log');
    const log = fs.openSync(logFile, 'a');
    // A hard limit of 48 descriptors: pgfeed cannot raise it, so ~40 connections reach EMFILE.
    const child = spawn('sh', ['-c', 'ulimit -n 48 && exec "$0" --listen "$1"', env.bin, socket], {
      env: { ...process.env, ...env.pg },
      stdio: ['ignore', 'ignore', log],
    });
    cleanups.push(async () => {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {}
      fs.rmSync(root, { recursive: true, force: true });
    });
    await waitFor('pgfeed listens', () => fs.existsSync(socket));
    await sleep(200);
    const conns = [];
    for (let i = 0; i < 80; i++) {
      const c = new RawConn(socket);
      conns.push(c);
    }
    await Promise.all(conns.map((c) => c.connected.catch(() => {})));
    await sleep(300);
    const before = cpuTicks(child.pid);
    await sleep(1000);
    const ticks = cpuTicks(child.pid) - before;
    const lines = fs.readFileSync(logFile, 'utf8').split('\n').filter((l) => /accept: Too many open files/.test(l));
    t.diagnostic(`at the limit: ${ticks} CPU ticks in 1 s, ${lines.length} log line(s)`);
    assert.ok(ticks <= 10, `no spinning: ${ticks} ticks of CPU in one second at the limit`);
    assert.equal(lines.length, 1, 'logged once for the episode');
    // Free the descriptors: the connections waiting in the backlog are then served.
    for (const c of conns.slice(0, 60)) c.destroy();
    await sleep(300);
    const a = await rawGet(socket, '/_health');
    assert.equal(a.status, 200, 'answers again once descriptors are free');
    const m = await rawMetrics(socket);
    assert.equal(m.get('pgfeed_accept_fd_exhausted_total'), 1);
    assert.equal(m.get('pgfeed_fds_limit'), 48);
    assert.match(fs.readFileSync(logFile, 'utf8'), /accepting again/);
    for (const c of conns) c.destroy();
  });
});
