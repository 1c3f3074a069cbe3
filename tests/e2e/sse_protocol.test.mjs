// The SSE contract (README "Server-Sent Events", "Several channels, one
// request"), read from the open stream through lighttpd with the one pgfeed it
// spawns (apache/lighttpd-pgfeed.conf), short --heartbeat and --sse-lifetime:
//   retry: first; retained events after since= then live ones; a catch-up
//   larger than --max-buffered/2 arrives in full (from the database and from
//   memory); Last-Event-ID wins over since=; no cursor starts at the live
//   edge; `: hb` every --heartbeat; the stream ends after --sse-lifetime and
//   Last-Event-ID resumes it with nothing lost or repeated; a pruned cursor
//   gets `event: reset` with an id at the head, then live events (also when
//   the pruned events are still in pgfeed's memory); several channels in one
//   stream (ids carry every cursor, and resume) and in one long poll (ETag
//   cursor per channel, either channel wakes it, If-None-Match 304); 17
//   channels are 400.
// Every item carries the time it arrived: assertions are about what came over
// the open stream, never about a body read after it closed.
import assert from 'node:assert/strict';
import { afterEach, before, describe } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { assertProblem, checkWith, etag } from './lib/foundation.mjs';
import { client } from './lib/http.mjs';
import { channelRow, lit, publish, publishMany, sql, unique } from './lib/pg.mjs';
import { crashLines, serverFor, startLighttpd } from './lib/servers.mjs';
import { eventJson, openSse, publishPadded, range, versionsOf } from './lib/sse_probe.mjs';

const HEARTBEAT = 1; // s
const LIFETIME = 4; // s
const RETRY = 1500; // ms, not the default, so the flag is seen to reach the stream

const prefix = unique('sse_proto');
let server;
let http;
const streams = [];
const check = checkWith(() => server());

/** Opens a stream and remembers it, so a failing check leaves none open. */
async function sse(reqPath, headers = {}) {
  const s = await openSse(server().base, reqPath, headers);
  streams.push(s);
  assert.equal(s.status, 200, `${reqPath}: status ${s.status}; ${s.raw().slice(0, 300)}`);
  assert.match(s.headers['content-type'] ?? '', /^text\/event-stream/, `${reqPath}: Content-Type`);
  return s;
}

const events = (n, type = 'e') => range(1, n).map((i) => ({ type, data: { n: i } }));
const q = encodeURIComponent;

/** Resolves at the next `: hb` comment: by then the stream is idle and its cursor resolved. */
function nextHeartbeat(s, ms = HEARTBEAT * 1000 + 2000) {
  const from = s.items.length;
  return s.waitFor('a heartbeat', (st) => st.items.slice(from).find((i) => i.kind === 'comment' && i.text === 'hb'), ms);
}

describe(`SSE through lighttpd (--heartbeat ${HEARTBEAT}, --sse-lifetime ${LIFETIME}, --sse-retry ${RETRY})`, () => {
  server = serverFor(() =>
    startLighttpd({
      env: {
        PGFEED_HEARTBEAT: String(HEARTBEAT),
        PGFEED_SSE_LIFETIME: String(LIFETIME),
        PGFEED_SSE_RETRY: String(RETRY),
      },
    }),
  );
  before(() => {
    http = client(server().base);
  });

  afterEach(() => {
    for (const s of streams.splice(0)) s.close();
  });

  check('retry: comes first, then the retained events after since=, then live events', async () => {
    const ch = `${prefix}.catchup`;
    await publishMany(ch, events(5));
    const s = await sse(`/feed/${ch}?since=2`);
    await s.waitEvents(3, 5000);
    assert.ok(s.raw().startsWith(`retry: ${RETRY}\n`), `the body starts with retry: ${RETRY}: ${JSON.stringify(s.raw().slice(0, 40))}`);
    assert.deepEqual(s.items[0], { kind: 'retry', retry: RETRY, raw: String(RETRY), at: s.items[0].at });

    await publish(ch, 'live', { n: 6 });
    await publish(ch, 'live', { n: 7 });
    const got = await s.waitEvents(5, 5000);
    assert.ok(s.open(), 'all of it arrived while the stream is open');
    assert.deepEqual(got.map((e) => e.id), ['3', '4', '5', '6', '7'], 'id: is the cursor after each event');
    assert.deepEqual(got.map((e) => e.event), [undefined, undefined, undefined, undefined, undefined], 'no event: field, so onmessage gets every event');
    for (const e of got) {
      const json = eventJson(e);
      assert.equal(json.channel, ch);
      assert.equal(String(json.version), e.id);
      assert.deepEqual(json.data, { n: json.version });
      assert.equal(json.type, json.version <= 5 ? 'e' : 'live');
    }
    // the catch-up arrived at once, the live events only after they were published
    assert.ok(got[2].at < got[3].at, 'retained events before live ones');
  });

  // --max-buffered is the default (256 KiB): a stream writes up to half of it,
  // then continues as the socket drains. Neither catch-up below needs another
  // publish to arrive in full.
  check('a catch-up read from the database, larger than --max-buffered/2, arrives in full without another publish', async () => {
    const ch = `${prefix}.bigcatchup_db`;
    // 600 events of ~1.1 KB: more than the 256 events pgfeed keeps in memory per channel
    await publishPadded(ch, 1, 600, 1000);
    const s = await sse(`/feed/${ch}?since=0`);
    const got = await s.waitFor('all 600 events', (st) => st.events().length >= 600 && st.events(), 8000).catch((err) => {
      const ev = s.events();
      throw new Error(`${ev.length} of 600 events arrived (last id ${ev.at(-1)?.id}), then ${s.items.filter((i) => i.kind === 'comment').length} heartbeats and nothing else: ${err.message.split('\n')[0]}`);
    });
    assert.deepEqual(versionsOf(got), range(1, 600));
  });

  check('a catch-up served from memory, larger than --max-buffered/2, arrives in full without another publish', async () => {
    const ch = `${prefix}.bigcatchup_mem`;
    // 250 events of ~3.1 KB (780 KB): all within the 256 events / 1 MiB pgfeed keeps per channel
    await publishPadded(ch, 1, 250, 3000);
    const s = await sse(`/feed/${ch}?since=0`);
    const got = await s.waitFor('all 250 events', (st) => st.events().length >= 250 && st.events(), 8000).catch((err) => {
      const ev = s.events();
      throw new Error(`${ev.length} of 250 events arrived (last id ${ev.at(-1)?.id}), then ${s.items.filter((i) => i.kind === 'comment').length} heartbeats and nothing else: ${err.message.split('\n')[0]}`);
    });
    assert.deepEqual(versionsOf(got), range(1, 250));
  });

  check('Last-Event-ID wins over since= (what EventSource sends on reconnect)', async () => {
    const ch = `${prefix}.lastid`;
    await publishMany(ch, events(5));
    const s = await sse(`/feed/${ch}?since=1`, { 'Last-Event-ID': '3' });
    await s.waitEvents(2, 5000);
    await nextHeartbeat(s);
    assert.deepEqual(s.events().map((e) => e.id), ['4', '5'], 'events after Last-Event-ID 3, not after since=1');
    await publish(ch, 'live', {});
    const got = await s.waitEvents(3, 5000);
    assert.equal(got[2].id, '6');
  });

  check('without a cursor the stream starts at the live edge', async () => {
    const ch = `${prefix}.edge`;
    await publishMany(ch, events(3));
    const s = await sse(`/feed/${ch}`);
    await nextHeartbeat(s);
    assert.deepEqual(s.events(), [], 'none of the 3 retained events is sent');
    await publish(ch, 'live', { n: 4 });
    const [e] = await s.waitEvents(1, 5000);
    assert.equal(e.id, '4');
    assert.equal(eventJson(e).version, 4);
    await nextHeartbeat(s);
    assert.equal(s.events().length, 1);
  });

  check(`an idle stream gets ": hb" every ${HEARTBEAT} s and ends cleanly after ${LIFETIME} s`, async () => {
    const ch = `${prefix}.idle`;
    const s = await sse(`/feed/${ch}?since=0`);
    const want = LIFETIME / HEARTBEAT - 1;
    await s.waitFor(`${want} heartbeats`, (st) => st.items.filter((i) => i.kind === 'comment').length >= want, LIFETIME * 1000 + 1000);
    assert.ok(s.open(), 'the heartbeats arrived on the open stream');
    const end = await Promise.race([s.ended, sleep(LIFETIME * 1000 + 3000).then(() => null)]);
    assert.ok(end, `the stream did not end within ${LIFETIME + 3} s`);
    assert.equal(end.clean, true, `the stream ends as a complete response: ${JSON.stringify(end)}`);
    assert.ok(end.at >= LIFETIME * 1000 - 300 && end.at <= LIFETIME * 1000 + 1500, `ended after ${end.at} ms, --sse-lifetime is ${LIFETIME} s`);

    const hbs = s.items.filter((i) => i.kind === 'comment');
    assert.ok(hbs.every((i) => i.text === 'hb'), `comments: ${JSON.stringify(hbs)}`);
    assert.deepEqual(s.events(), []);
    // retry: at ~0, then one heartbeat per interval after the last write
    const times = [s.items[0].at, ...hbs.map((i) => i.at)];
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    assert.ok(gaps.length >= want, `heartbeats at ${JSON.stringify(times)} ms`);
    for (const g of gaps) {
      assert.ok(g >= HEARTBEAT * 1000 - 150 && g <= HEARTBEAT * 1000 + 600, `heartbeat gap ${g} ms (heartbeats at ${JSON.stringify(times)} ms)`);
    }
  });

  check(`the stream ends after ${LIFETIME} s and resuming with Last-Event-ID loses and repeats nothing`, async () => {
    const ch = `${prefix}.lifetime`;
    const first = await sse(`/feed/${ch}?since=0`);
    let published = 0;
    let stop = false;
    const publisher = (async () => {
      while (!stop) {
        published = await publish(ch, 'tick', { at: Date.now() });
        await sleep(100);
      }
    })();
    try {
      const end = await Promise.race([first.ended, sleep(LIFETIME * 1000 + 3000).then(() => null)]);
      assert.ok(end, `the stream did not end within ${LIFETIME + 3} s`);
      assert.equal(end.clean, true, `the stream ends as a complete response: ${JSON.stringify(end)}`);
      const ev1 = first.events();
      assert.ok(ev1.length >= 10, `only ${ev1.length} events on the first stream`);
      const lastId = ev1.at(-1).id;
      assert.deepEqual(versionsOf(ev1), range(1, Number(lastId)), 'the first stream: every version up to its last id, once, in order');

      await sleep(500); // events published while no stream is open
      const second = await sse(`/feed/${ch}`, { 'Last-Event-ID': lastId });
      await sleep(800);
      stop = true;
      await publisher;
      const total = published;
      assert.ok(total > Number(lastId) + 3, `published ${total}, first stream ended at ${lastId}`);
      const ev2 = await second.waitFor(`version ${total}`, (st) => st.events().some((e) => e.id === String(total)) && st.events(), 5000);
      assert.ok(second.open());
      assert.deepEqual([...versionsOf(ev1), ...versionsOf(ev2)], range(1, total), 'both streams together: every version exactly once');
      assert.deepEqual(ev2.map((e) => e.id), range(Number(lastId) + 1, total).map(String));
    } finally {
      stop = true;
      await publisher;
    }
  });

  check('a pruned cursor gets "event: reset" with an id at the head, then live events', async () => {
    const ch = `${prefix}.pruned`;
    await publishMany(ch, events(10));
    await sql(`SELECT pgfeed.set_retention(${lit(ch)}, 3, NULL)`);
    await sql('SELECT pgfeed.prune()');
    assert.deepEqual(await channelRow(ch), { head: 10, oldest: 8 });

    for (const [how, reqPath, headers] of [
      ['since=2', `/feed/${ch}?since=2`, {}],
      ['Last-Event-ID: 2', `/feed/${ch}`, { 'Last-Event-ID': '2' }],
    ]) {
      const s = await sse(reqPath, headers);
      const [reset] = await s.waitEvents(1, 5000);
      assert.equal(reset.event, 'reset', `${how}: first event ${JSON.stringify(reset)}`);
      assert.deepEqual(eventJson(reset), { channel: ch, oldest: 8, head: 10, reason: 'pruned' }, how);
      assert.equal(reset.id, '10', `${how}: the reset's id is the head`);
      await nextHeartbeat(s);
      assert.equal(s.events().length, 1, `${how}: nothing but the reset before live events: ${JSON.stringify(s.events())}`);
      s.close();
    }

    const s = await sse(`/feed/${ch}?since=2`);
    await s.waitEvents(1, 5000);
    await publish(ch, 'live', { n: 11 });
    await publish(ch, 'live', { n: 12 });
    const got = await s.waitEvents(3, 5000);
    assert.ok(s.open(), 'the stream goes on after the reset: no reconnect loop');
    assert.deepEqual(got.map((e) => [e.event, e.id]), [['reset', '10'], [undefined, '11'], [undefined, '12']]);
    assert.deepEqual(got.slice(1).map((e) => eventJson(e).version), [11, 12]);
  });

  check('a cursor pruned while the channel is in pgfeed\'s memory also gets "event: reset"', async () => {
    // A stream that read the channel from its start keeps versions 1..10 in the
    // process's cache; pruning happens in SQL behind its back.
    const ch = `${prefix}.pruned_cached`;
    await publishMany(ch, events(10));
    const holder = await sse(`/feed/${ch}?since=0`);
    await holder.waitEvents(10, 5000);
    await sql(`SELECT pgfeed.set_retention(${lit(ch)}, 3, NULL)`);
    await sql('SELECT pgfeed.prune()');
    assert.deepEqual(await channelRow(ch), { head: 10, oldest: 8 });

    const s = await sse(`/feed/${ch}`, { 'Last-Event-ID': '2' });
    const [first] = await s.waitEvents(1, 5000);
    assert.deepEqual(
      [first.event, first.id, first.data],
      ['reset', '10', JSON.stringify({ channel: ch, oldest: 8, head: 10, reason: 'pruned' })],
      `Last-Event-ID 2 after pruning to oldest 8: the first event must be the reset; got ${s.events().length} events, ids ${JSON.stringify(s.events().map((e) => e.id))}`,
    );
  });

  check('several channels in one stream: ids carry every cursor, and resuming with such an id works', async () => {
    const a = `${prefix}.ma`;
    const b = `${prefix}.mb`;
    await publishMany(a, events(2));
    await publish(b, 'e', { n: 1 });
    const base = `/feed/?channel=${q(a)}&channel=${q(b)}`;
    const cursorOf = (c) => `${a}=${c[a]},${b}=${c[b]}`;

    const s = await sse(`${base}&since=${q(`${a}=1,${b}=0`)}`);
    await s.waitEvents(2, 5000);
    await nextHeartbeat(s);
    await publish(b, 'e', { n: 2 });
    await sleep(200);
    await publish(a, 'e', { n: 3 });
    const got = await s.waitEvents(4, 5000);
    assert.ok(s.open());
    const cursor = { [a]: 1, [b]: 0 };
    const seen = got.map((e) => {
      const json = eventJson(e);
      assert.equal(e.event, undefined);
      assert.equal(json.version, cursor[json.channel] + 1, `${json.channel} v${json.version} follows ${cursor[json.channel]}`);
      cursor[json.channel] = json.version;
      assert.equal(e.id, cursorOf(cursor), `the id after ${json.channel} v${json.version} names both cursors`);
      return `${json.channel === a ? 'a' : 'b'}${json.version}`;
    });
    assert.deepEqual(seen.slice(0, 2).sort(), ['a2', 'b1'], 'catch-up');
    assert.deepEqual(seen.slice(2), ['b2', 'a3'], 'live, in publishing order');
    s.close();

    // resume from the id the stream gave after its catch-up, as EventSource would
    const resumeId = got[1].id;
    await publish(a, 'e', { n: 4 });
    await publish(b, 'e', { n: 3 });
    const r = await sse(`${base}&since=${q(`${a}=0,${b}=0`)}`, { 'Last-Event-ID': resumeId });
    const again = await r.waitEvents(4, 5000);
    await nextHeartbeat(r);
    assert.equal(r.events().length, 4, `exactly the events after ${resumeId}: ${JSON.stringify(r.events().map((e) => e.id))}`);
    const c2 = { [a]: 2, [b]: 1 };
    const perChannel = { [a]: [], [b]: [] };
    for (const e of again) {
      const json = eventJson(e);
      perChannel[json.channel].push(json.version);
      c2[json.channel] = json.version;
      assert.equal(e.id, cursorOf(c2));
    }
    assert.deepEqual(perChannel, { [a]: [3, 4], [b]: [2, 3] }, `after ${resumeId}`);
  });

  check('several channels in one long poll: a cursor per channel in the ETag, either channel wakes it, 304', async () => {
    const a = `${prefix}.la`;
    const b = `${prefix}.lb`;
    await publishMany(a, events(2));
    await publish(b, 'e', {});
    const base = `/feed/?channel=${q(a)}&channel=${q(b)}`;

    const all = await http.get(base);
    assert.equal(all.status, 200, all.body);
    assert.deepEqual(Object.keys(all.json).sort(), ['channels', 'cursor', 'events']);
    assert.deepEqual(all.json.channels, { [a]: { head: 2, oldest: 1, more: false }, [b]: { head: 1, oldest: 1, more: false } });
    assert.deepEqual(all.json.events.map((e) => [e.channel, e.version]).sort(), [[a, 1], [a, 2], [b, 1]].sort());
    let cursor = `${a}=2,${b}=1`;
    assert.equal(etag(all), cursor);
    assert.equal(all.json.cursor, cursor);

    const same = await http.get(base, { 'If-None-Match': `"${cursor}"` });
    assert.equal(same.status, 304, `If-None-Match "${cursor}": ${same.status} ${same.body}`);
    assert.equal(same.headers.etag, `"${cursor}"`);

    for (const [ch, name, next] of [
      [b, 'b', `${a}=2,${b}=2`],
      [a, 'a', `${a}=3,${b}=2`],
    ]) {
      const held = http.get(`${base}&wait=10`, { 'If-None-Match': `"${cursor}"` }, { timeoutMs: 15000 });
      await sleep(600);
      const v = await publish(ch, 'wake', { by: name });
      const res = await held;
      assert.equal(res.status, 200, `long poll woken by ${name}: ${res.status} ${res.body}`);
      assert.ok(res.ms >= 500 && res.ms < 5000, `held until the event on ${name} (${res.ms} ms)`);
      assert.deepEqual(res.json.events.map((e) => [e.channel, e.version, e.type]), [[ch, v, 'wake']]);
      assert.equal(etag(res), next);
      assert.equal(res.json.cursor, next);
      cursor = next;
    }

    // the cursor in since= works the same
    const held = http.get(`${base}&wait=10&since=${q(cursor)}`, undefined, { timeoutMs: 15000 });
    await sleep(400);
    await publish(b, 'wake', {});
    const res = await held;
    assert.deepEqual(res.json.events.map((e) => [e.channel, e.version]), [[b, 3]]);
    cursor = `${a}=3,${b}=3`;
    assert.equal(etag(res), cursor);

    const timedOut = await http.get(`${base}&wait=1`, { 'If-None-Match': `"${cursor}"` }, { timeoutMs: 10000 });
    assert.equal(timedOut.status, 304, `a conditional long poll that times out: ${timedOut.status} ${timedOut.body}`);
    assert.ok(timedOut.ms >= 900, `answered after ${timedOut.ms} ms`);
    assert.equal(timedOut.headers.etag, `"${cursor}"`);
  });

  check('17 channels (more than --max-channels 16) are a 400 problem+json, 16 are served', async () => {
    const names = range(1, 17).map((i) => `${prefix}.many${i}`);
    const query = (n) => names.slice(0, n).map((c) => `channel=${q(c)}`).join('&');
    for (const headers of [undefined, { Accept: 'text/event-stream' }]) {
      const res = await http.get(`/feed/?${query(17)}`, headers);
      assertProblem(res, 400, `17 channels${headers ? ' (SSE)' : ''}`);
      assert.match(res.json.detail, /17/, res.json.detail);
      assert.match(res.json.detail, /16/, res.json.detail);
    }
    const ok = await http.get(`/feed/?${query(16)}`);
    assert.equal(ok.status, 200, ok.body);
    assert.equal(Object.keys(ok.json.channels).length, 16);
    const s = await sse(`/feed/?${query(16)}`);
    await nextHeartbeat(s);
    await publish(names[15], 'e', {});
    const [e] = await s.waitEvents(1, 5000);
    assert.equal(e.id, names.slice(0, 16).map((c, i) => `${c}=${i === 15 ? 1 : 0}`).join(','));
  });

  check('the server logs show no crash', async () => {
    const bad = crashLines(server().logsSince());
    assert.deepEqual(bad, [], `pgfeed misbehaved:\n${bad.join('\n')}`);
  });
});
