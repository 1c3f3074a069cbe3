// Request forms at the edges of HTTP, through nginx in front of a pgfeed
// daemon with publishing on (apache/nginx-pgfeed.conf):
//   - HEAD with Accept: text/event-stream answers at once, without a body;
//   - Accept: text/event-stream;q=0 means "not a stream";
//   - If-None-Match with several tags is current when any of them is;
//   - POST with Content-Type application/jsonfoo is not JSON (415);
//   - an event type refused by PostgreSQL is the client's error: 400, logged
//     at debug, never at warn;
//   - --default-limit above --max-limit stops pgfeed before it serves;
//   - pgfeed logged in as a role holding only pgfeed_reader, pgfeed_pruner and
//     pgfeed_publisher (README, "Roles and grants") reads, streams, publishes
//     and prunes, and a POST outside its publish prefixes is a 403.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, describe } from 'node:test';

import { assertFeed, assertProblem, checkWith, etag } from './lib/foundation.mjs';
import { client } from './lib/http.mjs';
import { publishMany, sql, unique } from './lib/pg.mjs';
import { waitFor } from './lib/resilience.mjs';
import { testEnv } from './lib/env.mjs';
import { crashLines, serverFor, startNginx } from './lib/servers.mjs';
import { openSse } from './lib/sse_probe.mjs';
import { readableDir } from './lib/auth.mjs';

const prefix = unique('edges');
// Publishing is never anonymous: POSTs carry the shared token from a file.
const PUBLISH_TOKEN = `${prefix}-publish-0123456789`;
const tokenFiles = readableDir('edges');
const publishEnv = { PGFEED_PUBLISH: '1', PGFEED_PUBLISH_TOKEN_FILE: tokenFiles.write('publish-token', `${PUBLISH_TOKEN}\n`) };
const publisher = { Authorization: `Bearer ${PUBLISH_TOKEN}` };
const getServer = serverFor(() => startNginx({ daemonEnv: { ...publishEnv, PGFEED_MAX_WAIT: '30' } }), { checkCrashes: true });

describe('request forms at the edges of HTTP, through nginx', () => {
  after(() => tokenFiles.cleanup());
  const check = checkWith(getServer);

  check('HEAD with Accept: text/event-stream answers at once, without a body', async () => {
    const http = client(getServer().base);
    const ch = `${prefix}.head`;
    await publishMany(ch, [{ type: 't', data: {} }]);
    const res = await http.send('HEAD', `/feed/${ch}?wait=20`, {
      headers: { Accept: 'text/event-stream' },
      timeoutMs: 5000,
    });
    assert.equal(res.status, 200);
    assert.equal(res.body, '', 'no body');
    assert.ok(res.ms < 3000, `answered in ${res.ms} ms, not held`);
    assert.doesNotMatch(res.headers['content-type'] ?? '', /event-stream/);
  });

  check('Accept: text/event-stream;q=0 is a poll, not a stream', async () => {
    const http = client(getServer().base);
    const ch = `${prefix}.q0`;
    await publishMany(ch, [{ type: 't', data: {} }]);
    const res = await http.get(`/feed/${ch}`, { Accept: 'text/event-stream;q=0, application/json' });
    assertFeed(res, ch, 'q=0');
    assert.equal(res.json.events.length, 1);
  });

  check('If-None-Match with several tags is current when any of them is', async () => {
    const http = client(getServer().base);
    const ch = `${prefix}.inm`;
    await publishMany(ch, [1, 2, 3].map((n) => ({ type: 't', data: { n } })));
    const first = await http.get(`/feed/${ch}`);
    assert.equal(etag(first), '3');
    const res = await http.get(`/feed/${ch}`, { 'If-None-Match': '"1", "3"' });
    assert.equal(res.status, 304, `"1", "3" at head 3: ${res.status} ${res.body}`);
    const older = await http.get(`/feed/${ch}`, { 'If-None-Match': '"1", W/"2"' });
    assert.equal(older.status, 200);
    assert.deepEqual(older.json.events.map((e) => e.version), [3], 'continues after the newest tag');
  });

  check('POST with Content-Type application/jsonfoo is refused as not JSON', async () => {
    const http = client(getServer().base);
    const ch = `${prefix}.ctype`;
    const body = JSON.stringify({ type: 't', data: {} });
    const res = await http.send('POST', `/feed/${ch}`, {
      headers: { ...publisher, 'Content-Type': 'application/jsonfoo' },
      body,
    });
    assertProblem(res, 415, 'application/jsonfoo');
    const ok = await http.send('POST', `/feed/${ch}`, {
      headers: { ...publisher, 'Content-Type': 'application/json; charset=utf-8' },
      body,
    });
    assert.equal(ok.status, 201, `application/json; charset=utf-8: ${ok.status} ${ok.body}`);
  });

  check('an event type PostgreSQL refuses is a 400 and no warning in the log', async () => {
    const http = client(getServer().base);
    const ch = `${prefix}.type`;
    const mark = getServer().mark();
    const res = await http.send('POST', `/feed/${ch}`, {
      headers: { ...publisher, 'Content-Type': 'application/json' },
      body: JSON.stringify({ type: 'evil\nwarn: forged line', data: {} }),
    });
    assertProblem(res, 400, 'control character in the type');
    const logged = getServer().logsSince(mark);
    assert.doesNotMatch(logged, /query failed/, 'a refused input is logged at debug only');
    assert.doesNotMatch(logged, /^warn: forged line/m, 'no forged log line');
  });

  check('--default-limit above --max-limit stops pgfeed before it serves', () => {
    const run = spawnSync(testEnv().bin, ['--default-limit', '500', '--max-limit', '100'], {
      encoding: 'utf8',
      timeout: 10000,
      env: { ...process.env, GATEWAY_INTERFACE: '' },
    });
    assert.notEqual(run.status, 0, `exit status ${run.status}`);
    assert.match(run.stderr, /--default-limit 500 is above --max-limit 100/);
  });

  check('pgfeed as a login with only the documented pgfeed roles reads, streams, publishes, prunes', async () => {
    const role = unique('edges_web');
    const ch = `${prefix}.roles`;
    await sql(`CREATE ROLE ${role} LOGIN; GRANT pgfeed_reader, pgfeed_pruner, pgfeed_publisher TO ${role}`);
    const web = await startNginx({
      daemonEnv: { PGUSER: role, ...publishEnv, PGFEED_PRUNE_INTERVAL: '1' },
    });
    try {
      const http = client(web.base);
      await publishMany(ch, [1, 2, 3].map((n) => ({ type: 't', data: { n } })));
      const res = await http.get(`/feed/${ch}?since=0`);
      assertFeed(res, ch, 'read as the least-privilege role');
      assert.equal(res.json.events.length, 3);
      const stream = await openSse(web.base, `/feed/${ch}`, { 'Last-Event-ID': '2' });
      try {
        await stream.waitEvents(1, 5000);
        const posted = await http.send('POST', `/feed/${ch}`, {
          headers: { ...publisher, 'Content-Type': 'application/json' },
          body: JSON.stringify({ type: 'posted', data: { n: 4 } }),
        });
        assert.equal(posted.status, 201, `POST: ${posted.status} ${posted.body}`);
        const events = await stream.waitEvents(2, 5000);
        assert.equal(JSON.parse(events[1].data).type, 'posted');
        // Publishing rules bind pgfeed's own role too: a channel outside its prefixes is a 403.
        await sql(`INSERT INTO pgfeed.publish_prefix VALUES ('${role}', 'elsewhere:')`);
        try {
          const refused = await http.send('POST', `/feed/${ch}`, {
            headers: { ...publisher, 'Content-Type': 'application/json' },
            body: JSON.stringify({ type: 'refused', data: {} }),
          });
          assertProblem(refused, 403, 'POST outside the role\'s publish prefixes');
        } finally {
          await sql(`DELETE FROM pgfeed.publish_prefix WHERE role = '${role}'`);
        }
      } finally {
        stream.close();
      }
      await sql(`SELECT pgfeed.set_retention('${ch}', 1, NULL)`);
      const pruned = await waitFor('the responder\'s own prune', async () => {
        const r = await http.get(`/feed/${ch}?since=3`);
        return r.status === 200 && r.json.oldest === 4 && r;
      });
      assert.deepEqual(pruned.json.events.map((e) => e.version), [4]);
    } finally {
      await web.stop();
      const crashes = crashLines(web.logsSince());
      web.cleanup();
      await sql(`DROP ROLE ${role}`);
      assert.deepEqual(crashes, [], 'pgfeed logged no crash');
    }
  });
});
