// Slow SSE readers (README: "A reader that falls behind by more than
// --max-buffered/2 bytes for a heartbeat interval is disconnected (memory
// stays bounded) and resumes from its last id"), against a pgfeed daemon
// (--max-buffered 8192, --heartbeat 1) behind nginx:
//   - readers that stop reading: raw FastCGI clients straight to the daemon's
//     socket that send their request and then read nothing, so pgfeed's writes
//     pile up; many large events are published; pgfeed's RSS
//     (/proc/<pid>/status) stays within a budget far below what queueing the
//     events for every stalled reader would take, pgfeed_slow_streams_ended_total
//     rises by one per stalled reader and each stream is ended, whether the
//     events come in bursts or in one transaction;
//   - fresh readers through nginx, resuming from the stalled reader's last id
//     and from an early id, get every event;
//   - a reader that keeps up gets a catch-up larger than --max-buffered/2 in
//     full (the same flow control, seen from the reader that is not slow).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { afterEach, describe } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { checkWith } from './lib/foundation.mjs';
import { unique } from './lib/pg.mjs';
import { metrics } from './lib/metrics.mjs';
import { waitFor } from './lib/resilience.mjs';
import { crashLines, serverFor, startNginx } from './lib/servers.mjs';
import { fcgiStalledStream, openSse, parseSse, publishPadded, range, rssKiB, versionsOf } from './lib/sse_probe.mjs';

const MAX_BUFFERED = 8192; // bytes
const HEARTBEAT = 1; // s
const STALLED = 8; // readers that stop reading
const EVENTS = 300; // published while they are stalled ...
const SIZE = 32000; // ... each with this many bytes of padding ...
const BURST = 20; // ... this many per transaction
// What pgfeed may need, whatever it is sent: its ring of recent events (1 MiB
// by default), a database read of a burst per stream, MAX_BUFFERED per stream,
// and allocator slack. Queueing the events for every stalled reader would take
// STALLED * EVENTS * SIZE (73 MiB here).
const RSS_BUDGET_MIB = 20;
// Under AddressSanitizer freed memory sits in the allocator's quarantine (and
// stays resident), so RSS says nothing about what pgfeed holds: the sanitizer
// pass checks the rest (streams ended, no leak or error reports).
const SANITIZED = fs.readFileSync(process.env.PGFEED_BIN).includes('__asan_init');

const prefix = unique('sse_slow');
let server;
const check = checkWith(() => server());
const open = [];

afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

async function metric(name) {
  return (await metrics(server().base)).get(name) ?? 0;
}

describe(`slow SSE readers, pgfeed daemon behind nginx (--max-buffered ${MAX_BUFFERED}, --heartbeat ${HEARTBEAT})`, () => {
  const ch = `${prefix}.big`;
  let lastIds = [];

  server = serverFor(() =>
    startNginx({
      daemonEnv: { PGFEED_MAX_BUFFERED: String(MAX_BUFFERED), PGFEED_HEARTBEAT: String(HEARTBEAT) },
    }),
  );

  /**
   * Opens STALLED readers on channel that stop reading, publishes EVENTS
   * events of SIZE bytes in transactions of burst events, and checks memory,
   * the slow-stream metric and what each reader got before it was ended.
   * Returns the stalled readers' last ids.
   */
  async function stalledReaders(t, channel, burst) {
    const pid = server().daemon.pid;
    const endedBefore = await metric('pgfeed_slow_streams_ended_total');
    const endedNow = async () => (await metric('pgfeed_slow_streams_ended_total')) - endedBefore;
    const stalled = range(1, STALLED).map(() => fcgiStalledStream(server().daemon.socket, `/${channel}`, { query: 'since=0' }));
    try {
      await Promise.all(stalled.map((s) => s.connected));
      await waitFor(`${STALLED} streams held`, async () => (await metric('pgfeed_held_requests')) === STALLED, { timeoutMs: 5000 });
      await sleep(200);
      const rssBefore = rssKiB(pid);
      let rssPeak = rssBefore;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          rssPeak = Math.max(rssPeak, rssKiB(pid));
          await sleep(20);
        }
      })();
      const t0 = Date.now();
      let published;
      let endedAll = null;
      try {
        for (let v = 1; v <= EVENTS; v += burst) await publishPadded(channel, v, Math.min(EVENTS, v + burst - 1), SIZE);
        published = Date.now() - t0;
        // one heartbeat interval above the high-water mark ends a stream: allow a few
        endedAll = await waitFor(`all ${STALLED} streams ended`, async () => (await endedNow()) >= STALLED && Date.now() - t0, {
          timeoutMs: 3 * HEARTBEAT * 1000 + 3000,
        }).catch(() => null);
        if (endedAll) await waitFor('no stream held', async () => (await metric('pgfeed_held_requests')) === 0, { timeoutMs: 3000 });
        await sleep(300);
      } finally {
        sampling = false;
        await sampler;
      }
      const ended = await endedNow();
      const held = await metric('pgfeed_held_requests');
      const grewMiB = (rssPeak - rssBefore) / 1024;
      const timing =
        `${EVENTS} events published in ${published} ms, ${burst} per transaction; ` +
        (endedAll ? `all ${STALLED} streams ended ${endedAll} ms after publishing began` : `${ended} of ${STALLED} streams ended, ${held} still held`);
      t.diagnostic(`RSS ${(rssBefore / 1024).toFixed(1)} MiB before, peak ${(rssPeak / 1024).toFixed(1)} MiB (+${grewMiB.toFixed(1)} MiB); ${timing}`);
      assert.ok(
        SANITIZED || grewMiB <= RSS_BUDGET_MIB,
        `pgfeed's RSS grew by ${grewMiB.toFixed(1)} MiB (from ${(rssBefore / 1024).toFixed(1)} MiB), more than ${RSS_BUDGET_MIB} MiB, ` +
          `while ${STALLED} stalled readers were sent ${((EVENTS * SIZE) / 2 ** 20).toFixed(1)} MiB each (${timing})`,
      );
      assert.ok(
        endedAll,
        `pgfeed_slow_streams_ended_total rose by ${ended}, not ${STALLED}, within ${3 * HEARTBEAT + 3} s after publishing; ` +
          `pgfeed_held_requests is ${held} (${timing})`,
      );

      // Each stalled reader now reads what reached it: a run of events from
      // the first, then the connection closed by pgfeed.
      const lastIds = [];
      for (const [i, s] of stalled.entries()) {
        const got = await s.drain(5000);
        assert.equal(got.status, 200, `stalled reader ${i}: ${got.head}`);
        const items = parseSse(got.body);
        assert.equal(items[0]?.kind, 'retry', `stalled reader ${i}: retry: first`);
        const versions = versionsOf(items);
        assert.ok(versions.length > 0 && versions.length < EVENTS, `stalled reader ${i} received ${versions.length} of ${EVENTS} events before it was ended`);
        assert.deepEqual(versions, range(1, versions.length), `stalled reader ${i}: a contiguous run from version 1`);
        assert.deepEqual(items.filter((it) => it.kind === 'event').map((e) => e.id), versions.map(String));
        lastIds.push(String(versions.at(-1)));
      }
      return lastIds;
    } finally {
      for (const s of stalled) s.destroy();
    }
  }

  check(`${STALLED} readers that stop reading are ended, and pgfeed's memory stays bounded, while ${EVENTS} events of ${SIZE / 1000} KB are published ${BURST} at a time`, async (t) => {
    lastIds = await stalledReaders(t, ch, BURST);
  });

  check(`the same when the ${EVENTS} events are published in one transaction`, async (t) => {
    await stalledReaders(t, `${prefix}.burst`, EVENTS);
  });

  check('fresh readers resuming from a stalled reader\'s last id, or from an early id, get every event', async () => {
    assert.ok(lastIds.length, 'the stalled readers\' check ran first');
    const resumes = [lastIds[0], '1'];
    const streams = await Promise.all(resumes.map((id) => openSse(server().base, `/feed/${ch}`, { 'Last-Event-ID': id })));
    open.push(...streams);
    const results = await Promise.allSettled(
      streams.map((s, i) => {
        const want = EVENTS - Number(resumes[i]);
        return s.waitFor(`${want} events`, (st) => st.events().length >= want, 6000).catch(() => {
          const ev = s.events();
          throw new Error(
            `Last-Event-ID ${resumes[i]}: ${ev.length} of ${want} events arrived (last id ${ev.at(-1)?.id}), ` +
              `then ${s.items.filter((it) => it.kind === 'comment').length} heartbeats and nothing more`,
          );
        });
      }),
    );
    const failed = results.filter((r) => r.status === 'rejected').map((r) => r.reason.message);
    assert.deepEqual(failed, [], failed.join('\n'));
    for (const [i, s] of streams.entries()) {
      assert.deepEqual(versionsOf(s.events()), range(Number(resumes[i]) + 1, EVENTS), `Last-Event-ID ${resumes[i]}`);
      assert.ok(s.open());
    }
  });

  check(`a reader that keeps up gets a catch-up from memory larger than --max-buffered/2 in full`, async () => {
    const small = `${prefix}.small`;
    // 200 events of ~0.3 KB (60 KB): all in pgfeed's memory, 15 times MAX_BUFFERED/2
    await publishPadded(small, 1, 200, 150);
    const s = await openSse(server().base, `/feed/${small}?since=0`);
    open.push(s);
    await s.waitFor('all 200 events', (st) => st.events().length >= 200, 5000).catch(() => {
      const ev = s.events();
      throw new Error(`${ev.length} of 200 events arrived (last id ${ev.at(-1)?.id}), then ${s.items.filter((it) => it.kind === 'comment').length} heartbeats and nothing more`);
    });
    assert.deepEqual(versionsOf(s.events()), range(1, 200));
  });

  check('the server logs show no crash', async () => {
    const bad = crashLines(server().logsSince());
    assert.deepEqual(bad, [], `pgfeed misbehaved:\n${bad.join('\n')}`);
  });
});
