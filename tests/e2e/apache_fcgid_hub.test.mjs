// mod_fcgid with the per-host hub (issue 11), through Apache httpd +
// mod_fcgid configured by apache/pgfeed-fcgid.conf unchanged: every process
// mod_fcgid spawns is a relay to one hub, which holds every request on one
// PostgreSQL connection. Checked: hundreds of held long polls on at most two
// connections, SSE and short polls through relays, the hub killed under held
// requests, unsafe socket directories, two vhosts with two databases, and a
// hub leaving when idle.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { serverUser, testEnv } from './lib/env.mjs';
import { assertFeed, assertProblem, checkWith, etag } from './lib/foundation.mjs';
import { client, request } from './lib/http.mjs';
import { metrics } from './lib/metrics.mjs';
import { lit, publish, sql, unique } from './lib/pg.mjs';
import { waitFor } from './lib/resilience.mjs';
import { crashLines, hubPidsUnder, snippetPath, startApache } from './lib/servers.mjs';
import { openSse } from './lib/sse_probe.mjs';

const E2E_DIR = path.dirname(fileURLToPath(import.meta.url)); // import.meta.dirname needs Node 20.11; Debian 12 has 18
const N_HELD = 300;

/** pgfeed's connections to PostgreSQL, told apart by their application_name. */
async function pgConnections(appName) {
  return Number(await sql(`SELECT count(*) FROM pg_stat_activity WHERE application_name = ${lit(appName)}`));
}

/** Socket files of hubs in dir. */
function hubSockets(dir) {
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.sock')) : [];
}

async function waitHeld(http, n, timeoutMs = 60000) {
  let held = 0;
  await waitFor(
    `${n} held requests in the hub's /_metrics`,
    async () => {
      held = (await metrics(http)).get('pgfeed_held_requests') ?? 0;
      return held >= n;
    },
    { timeoutMs, everyMs: 250, describe: () => `held ${held}` },
  );
  return held;
}

function stopAll(server) {
  return async () => {
    if (!server()) return;
    await server().stop();
    server().cleanup();
  };
}

describe('Apache mod_fcgid with the hub: one PostgreSQL connection for the host', () => {
  let server;
  let http;
  const appName = unique('pgfeed_e2e_hub');
  const check = checkWith(() => server);
  before(async () => {
    server = await startApache('fcgid', {
      defines: { PGFEED_APP_NAME: appName, PGFEED_HEARTBEAT: 1, PGFEED_SSE_LIFETIME: 60 },
    });
    http = client(server.base);
  });
  after(stopAll(() => server));

  check(`${N_HELD} concurrent long polls are all held and all get the next event, on at most 2 connections`, async () => {
    const ch = unique('e2e_hub_lp');
    await publish(ch, 'before', {});
    const polls = [];
    for (let i = 0; i < N_HELD; i++) polls.push(http.get(`/feed/${ch}?since=1&wait=30`, undefined, { timeoutMs: 60000 }));
    const started = Date.now();
    await waitHeld(http, N_HELD);
    const heldAfter = Date.now() - started;
    assert.equal(server.hubPids().length, 1, 'one hub holds them');
    assert.ok(server.pgfeedPids().length >= N_HELD, `${server.pgfeedPids().length} relays for ${N_HELD} held polls`);
    const connections = await pgConnections(appName);
    assert.ok(connections >= 1 && connections <= 2, `pgfeed has ${connections} PostgreSQL connections while ${N_HELD} are held`);

    const published = Date.now();
    await publish(ch, 'wake', { n: N_HELD });
    const answers = await Promise.all(polls);
    for (const [i, res] of answers.entries()) {
      const body = assertFeed(res, ch, `poll ${i}`);
      assert.deepEqual(body.events.map((e) => [e.version, e.type]), [[2, 'wake']], `poll ${i}`);
    }
    const wokenWithin = Date.now() - published;
    assert.ok(wokenWithin < 15000, `all ${N_HELD} answered ${wokenWithin} ms after the publish`);
    assert.ok((await pgConnections(appName)) <= 2, 'still at most 2 connections afterwards');
    process.stderr.write(`# ${N_HELD} held after ${heldAfter} ms, all answered ${wokenWithin} ms after the publish\n`);
  });

  check('short polls, ETag/304 and an SSE stream go through relays; /_metrics counts the stream held elsewhere', async () => {
    const ch = unique('e2e_hub_sse');
    await publish(ch, 'one', { n: 1 });
    const first = assertFeed(await http.get(`/feed/${ch}`), ch, 'short poll');
    assert.deepEqual(first.events.map((e) => e.version), [1]);
    const again = await http.get(`/feed/${ch}`, { 'If-None-Match': '"1"' });
    assert.equal(again.status, 304, `conditional short poll: ${again.status} ${again.body}`);

    const stream = await openSse(server.base, `/feed/${ch}`, { 'Last-Event-ID': '1' });
    assert.equal(stream.status, 200);
    await stream.waitFor('retry:', (s) => s.items.some((i) => i.kind === 'retry'), 5000);
    // Another relay reaches the same hub, so its metrics see the stream.
    await waitHeld(http, 1, 10000);
    await publish(ch, 'two', { n: 2 });
    const events = await stream.waitEvents(1, 10000);
    assert.equal(JSON.parse(events[0].data).version, 2);
    assert.equal(events[0].id, '2');
    stream.close();
    assert.equal(server.hubPids().length, 1, 'still the one hub');
  });

  check('the hub killed (-9) under held requests: clients get 503 or a clean close, resume, and lose nothing', async () => {
    const ch = unique('e2e_hub_kill');
    await publish(ch, 'before', {});
    // What an earlier check may still hold (a stream the server has not yet seen leave).
    const heldBefore = (await metrics(http)).get('pgfeed_held_requests') ?? 0;
    const n = 20;
    const polls = [];
    for (let i = 0; i < n; i++)
      polls.push(http.get(`/feed/${ch}?since=1&wait=30`, undefined, { timeoutMs: 40000 }).catch((err) => ({ error: err })));
    const stream = await openSse(server.base, `/feed/${ch}`, { 'Last-Event-ID': '1' });
    await waitHeld(http, heldBefore + n + 1, 30000);
    const [hubPid] = server.hubPids();
    const hubDir = path.join(server.root, 'hub');
    const [socket] = hubSockets(hubDir);
    assert.ok(socket, 'the hub has a socket');
    process.kill(hubPid, 'SIGKILL');

    const answers = await Promise.all(polls);
    const closed = answers.filter((res) => res.error).length;
    process.stderr.write(`# hub killed: ${n - closed} polls answered 503, ${closed} closed\n`);
    for (const [i, res] of answers.entries()) {
      if (res.error) continue; // a clean close: the client just polls again
      assertProblem(res, 503, `poll ${i} when its hub died`);
      assert.equal(res.headers['retry-after'], '1', `poll ${i}: Retry-After`);
    }
    await Promise.race([stream.ended, sleep(10000).then(() => assert.fail('the SSE stream did not end when its hub died'))]);
    assert.deepEqual(server.hubPids(), [], 'no hub left');
    assert.ok(fs.existsSync(path.join(hubDir, socket)), 'the dead hub left its socket file behind (stale)');

    // Everyone resumes from the cursor they had; the first request starts a new hub.
    const mark = server.mark();
    const again = [];
    for (let i = 0; i < n; i++) again.push(http.get(`/feed/${ch}?since=1&wait=30`, undefined, { timeoutMs: 40000 }));
    const resumed = await openSse(server.base, `/feed/${ch}`, { 'Last-Event-ID': '1' });
    await waitHeld(http, n + 1, 30000);
    const [newHub] = server.hubPids();
    assert.ok(newHub && newHub !== hubPid, `a new hub (${newHub}) replaced ${hubPid}`);
    assert.match(server.logsSince(mark), /replacing .*hub-[0-9a-f]+\.sock, left by a hub that is gone/);
    await publish(ch, 'after', { n: 2 });
    for (const [i, res] of (await Promise.all(again)).entries()) {
      const body = assertFeed(res, ch, `resumed poll ${i}`);
      assert.deepEqual(body.events.map((e) => [e.version, e.type]), [[2, 'after']]);
    }
    // A new hub may say `event: status` (database down, then up) while it connects:
    // the first plain event is the one that counts.
    let plain;
    for (let seen = 1; !plain && seen <= 4; seen++) plain = (await resumed.waitEvents(seen, 10000)).find((e) => !e.event);
    assert.equal(plain?.id, '2', 'the resumed stream gets the event published after the crash');
    resumed.close();
  });

  check('the server logs show no crash, leak or sanitizer report', async () => {
    await sleep(500);
    // The hub killed on purpose shows as nothing here: it is nobody's child.
    assert.deepEqual(crashLines(server.logsSince()), []);
  });
});

describe('Apache mod_fcgid with the hub: an unsafe socket directory is refused', () => {
  const cases = [['mode 0755', 0o755, serverUser()]];
  if (serverUser()) cases.push(['owned by root', 0o700, { uid: 0, gid: 0 }]);
  for (const [what, mode, owner] of cases) {
    let server;
    let parent;
    let dir;
    const appName = unique('pgfeed_e2e_unsafe');
    const check = checkWith(() => server);
    describe(`a directory ${what}`, () => {
      before(async () => {
        parent = fs.mkdtempSync(path.join(os.tmpdir(), 'pgfeed-e2e-hubdir-'));
        fs.chmodSync(parent, 0o755);
        dir = path.join(parent, 'hub');
        fs.mkdirSync(dir);
        if (owner) fs.chownSync(dir, owner.uid, owner.gid);
        fs.chmodSync(dir, mode);
        server = await startApache('fcgid', { defines: { PGFEED_HUB_DIR: dir, PGFEED_APP_NAME: appName } });
      });
      after(async () => {
        await stopAll(() => server)();
        fs.rmSync(parent, { recursive: true, force: true });
      });

      check('is refused with the reason logged, and the processes serve requests themselves', async () => {
        const http = client(server.base);
        const ch = unique('e2e_hub_unsafe');
        await publish(ch, 'one', {});
        const mark = server.mark();
        assertFeed(await http.get(`/feed/${ch}`), ch, 'short poll without a hub');
        const held = http.get(`/feed/${ch}?since=1&wait=10`, undefined, { timeoutMs: 20000 });
        await sleep(1000);
        await publish(ch, 'two', {});
        assert.deepEqual(assertFeed(await held, ch, 'long poll without a hub').events.map((e) => e.version), [2]);
        const log = server.logsSince(mark);
        assert.match(log, new RegExp(`refusing the socket directory ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
        assert.match(log, /serves its requests itself/);
        assert.deepEqual(hubPidsUnder(`${dir}/`), [], 'no hub started');
        assert.deepEqual(hubSockets(dir), [], 'no socket made there');
        assert.equal(fs.statSync(dir).mode & 0o777, mode, 'the directory is left as it was');
        assert.ok((await pgConnections(appName)) >= 1, 'the processes hold their own connections');
      });
    });
  }
});

describe('Apache mod_fcgid with the hub: something else where the socket belongs', () => {
  let server;
  let parent;
  let dir;
  const check = checkWith(() => server);
  let file;
  before(async () => {
    parent = fs.mkdtempSync(path.join(os.tmpdir(), 'pgfeed-e2e-hubdir-'));
    fs.chmodSync(parent, 0o755);
    if (serverUser()) fs.chownSync(parent, serverUser().uid, serverUser().gid); // the relay makes dir
    dir = path.join(parent, 'hub');
    const defines = { PGFEED_HUB_DIR: dir };
    // The same configuration twice gets the same hub path: learn it, then put a file there.
    const first = await startApache('fcgid', { defines });
    assert.equal((await client(first.base).get('/feed/_health')).status, 200);
    const [socket] = hubSockets(dir);
    await first.stop();
    first.cleanup();
    assert.ok(socket, 'the first server started a hub');
    file = path.join(dir, socket);
    fs.rmSync(file, { force: true });
    fs.writeFileSync(file, 'not a socket\n', { mode: 0o600 });
    if (serverUser()) fs.chownSync(file, serverUser().uid, serverUser().gid); // as if the user put it there
    server = await startApache('fcgid', { defines });
  });
  after(async () => {
    await stopAll(() => server)();
    fs.rmSync(parent, { recursive: true, force: true });
  });

  check('a file that is not a socket is left alone, and the relay serves the request itself', async () => {
    const http = client(server.base);
    const ch = unique('e2e_hub_file');
    await publish(ch, 'one', {});
    assertFeed(await http.get(`/feed/${ch}`), ch, 'answered without a hub');
    const log = server.logsSince();
    assert.match(log, /is not a socket; refusing to replace it/);
    assert.match(log, /serves its requests itself/);
    assert.equal(fs.readFileSync(file, 'utf8'), 'not a socket\n', 'the file is untouched');
    assert.deepEqual(hubPidsUnder(`${dir}/`), [], 'no hub started');
  });
});

describe('Apache mod_fcgid with the hub: two vhosts with two databases get two hubs', () => {
  let server;
  const dbB = unique('pgfeed_e2e_b');
  const check = checkWith(() => server);
  const psqlB = (text) =>
    new Promise((resolve, reject) => {
      execFile('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', dbB, ...text], { env: process.env }, (err, out, stderr) =>
        err ? reject(new Error(stderr || err.message)) : resolve(out.trim()),
      );
    });
  before(async () => {
    await sql(`CREATE DATABASE ${dbB}`);
    await psqlB(['-f', path.join(testEnv().sourceDir, 'sql', 'install.sql')]);
    server = await startApache('fcgid', {
      defines: {
        E2E_SNIPPET: path.join(E2E_DIR, 'conf', 'fcgid-two-vhosts.conf'),
        PGFEED_FCGID_CONF: snippetPath('pgfeed-fcgid.conf'),
        E2E_DATABASE_B: dbB,
        PGFEED_HUB_IDLE: 3,
      },
    });
  });
  after(async () => {
    await stopAll(() => server)();
    await sql(`DROP DATABASE IF EXISTS ${dbB} WITH (FORCE)`).catch(() => {});
  });

  check('each vhost reads its own database through its own hub; idle hubs leave and come back', async () => {
    const ch = unique('e2e_hub_vhost');
    await publish(ch, 'in-a', {});
    await psqlB(['-c', `SELECT pgfeed.publish(${lit(ch)}, 'in-b', '{}'); SELECT pgfeed.publish(${lit(ch)}, 'in-b', '{}')`]);
    const get = (host) => request(server.base, `/feed/${ch}`, { headers: { Host: host } });
    const a = assertFeed(await get('a.test'), ch, 'vhost a.test');
    const b = assertFeed(await get('b.test'), ch, 'vhost b.test');
    assert.deepEqual([a.head, b.head], [1, 2], 'each vhost sees its own database');
    assert.equal(server.hubPids().length, 2, 'two hubs');
    assert.equal(hubSockets(path.join(server.root, 'hub')).length, 2, 'two sockets');

    // PGFEED_HUB_IDLE=3: both leave, unlinking their sockets; the next request brings one back.
    await waitFor('idle hubs to leave', () => server.hubPids().length === 0, { timeoutMs: 15000, everyMs: 200 });
    assert.deepEqual(hubSockets(path.join(server.root, 'hub')), [], 'idle hubs removed their sockets');
    assert.equal(etag(await get('b.test')), '2');
    assert.equal(server.hubPids().length, 1, 'a hub again, for b.test only');
  });
});
