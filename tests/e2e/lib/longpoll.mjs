// longpoll — many held requests through one server, woken by one publish.
//
// For the servers that open one FastCGI connection per request (lighttpd,
// mod_proxy_fcgi, nginx), one pgfeed process holds every long poll: the
// checks count the held requests in /_metrics, publish once, and expect every
// poll to answer with that event, from one LISTEN notification rather than a
// query per request.
import assert from 'node:assert/strict';
import { before, describe } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { assertFeed, checkWith } from './foundation.mjs';
import { client } from './http.mjs';
import { metrics } from './metrics.mjs';
import { publish, unique } from './pg.mjs';
import { serverFor } from './servers.mjs';

/**
 * @param {string} title
 * @param {() => Promise<any>} start  the server; its pgfeed must allow wait=20
 * @param {{n: number, processes?: number, processPerRequest?: boolean}} options
 *   n: concurrent long polls; processes: pgfeed processes expected to hold
 *   them; processPerRequest: the server gives each process one request at a
 *   time (mod_fcgid), so every poll needs its own process and /_metrics only
 *   speaks for whichever process answers it
 */
export function longPollSuite(title, start, { n, processes = 1, processPerRequest = false }) {
  let server;
  let http;
  const check = checkWith(() => server());

  describe(title, () => {
    server = serverFor(start);
    before(() => {
      http = client(server().base);
    });

    check(`${n} concurrent long polls all receive the next published event`, async () => {
      const ch = unique('e2e_lp');
      await publish(ch, 'before', {});
      const polls = [];
      for (let i = 0; i < n; i++) {
        polls.push(http.get(`/feed/${ch}?since=1&wait=20`, undefined, { timeoutMs: 40000 }));
      }
      // Every poll must be held (not answered, not still connecting) first.
      const deadline = Date.now() + 20000;
      if (processPerRequest) {
        let count = 0;
        while (Date.now() < deadline && count < processes) {
          count = server().pgfeedPids().length;
          await sleep(100);
        }
        await sleep(1000); // the last process spawned still has to take its request
        server().track();
        assert.ok(count >= processes, `${count} pgfeed processes for ${n} held polls, expected ${processes}`);
      } else {
        let held = 0;
        while (Date.now() < deadline) {
          held = (await metrics(http)).get('pgfeed_held_requests') ?? 0;
          if (held >= n) break;
          await sleep(100);
        }
        assert.equal(held, n, `pgfeed_held_requests before the publish (of ${n} polls)`);
        server().track();
        assert.equal(server().pgfeedPids().length, processes, 'pgfeed processes holding them');
      }

      const queriesBefore = processPerRequest ? undefined : (await metrics(http)).get('pgfeed_database_queries_total');
      const published = Date.now();
      await publish(ch, 'wake', { n });
      const answers = await Promise.all(polls);
      for (const [i, res] of answers.entries()) {
        const body = assertFeed(res, ch, `poll ${i}`);
        assert.deepEqual(body.events.map((e) => [e.version, e.type]), [[2, 'wake']], `poll ${i}`);
      }
      const wokenWithin = Date.now() - published;
      assert.ok(wokenWithin < 10000, `all ${n} answered ${wokenWithin} ms after the publish`);
      const queriesAfter = processPerRequest ? undefined : (await metrics(http)).get('pgfeed_database_queries_total');
      if (queriesBefore !== undefined && queriesAfter !== undefined) {
        assert.ok(
          queriesAfter - queriesBefore <= 5 * processes,
          `one notification woke ${n} polls with ${queriesAfter - queriesBefore} queries (expected a few per process, not one per poll)`,
        );
      }
    });
  });
}
