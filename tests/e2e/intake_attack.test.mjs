// Issue 9, "done when": with a process serving held requests, 200 slow or
// silent FastCGI connections and a flood of random channel names change
// nothing for other clients. A probe poll is timed without the attack, then
// during it, on the same process; the ratio of the medians is the figure.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { begin, encodeParams, getParams, RawConn, record, requestBytes, timedGet } from './lib/fcgi_raw.mjs';
import { startNameFlood } from './lib/name_flood.mjs';
import { publish, unique } from './lib/pg.mjs';
import { rssKiB } from './lib/sse_probe.mjs';
import { crashLines, makeRoot, startDaemon } from './lib/servers.mjs';

const HELD = 200;
const SLOW = 100;
const SILENT = 100;
const FLOOD_WORKERS = 16;
const PROBES = 60;
const prefix = unique('attack');

let d;
let root;
after(() => {
  try {
    process.kill(d.pid, 'SIGKILL');
  } catch {}
  fs.rmSync(root, { recursive: true, force: true });
});

const get = (pathInfo, query = '') => timedGet(d.socket, pathInfo, query);

function quantile(values, q) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

async function probeRound(ch) {
  const times = [];
  for (let i = 0; i < PROBES; i++) {
    const a = await get(`/${ch}`);
    assert.equal(a.status, 200, `probe ${i}: ${a.status} ${a.body}`);
    assert.deepEqual(a.json.events.map((e) => e.version), [1]);
    times.push(a.ms);
    await sleep(5);
  }
  return { median: quantile(times, 0.5), p90: quantile(times, 0.9), max: Math.max(...times) };
}

test('200 slow or silent FastCGI connections plus a flood of random channel names change nothing for a probe', async (t) => {
  root = makeRoot('attack');
  d = await startDaemon(root, { env: { PGFEED_MAX_WAIT: '60' } });
  const probeCh = `${prefix}.probe`;
  const heldCh = `${prefix}.held`;
  await publish(probeCh, 'p', { n: 1 });
  await publish(heldCh, 'h', { n: 1 });
  await get(`/${probeCh}`); // cached from here on, as a busy channel would be

  // Held long polls, the process's normal load.
  const held = [];
  for (let i = 0; i < HELD; i++) {
    const c = new RawConn(d.socket);
    await c.send(requestBytes(1, getParams(`/${heldCh}`, { query: 'since=1&wait=60' })));
    held.push(c);
  }
  await sleep(300);
  const quiet = await probeRound(probeCh);
  const rssBefore = rssKiB(d.pid);

  // The attack: silent connections, connections that trickle their params a byte at a time.
  const attackers = [];
  for (let i = 0; i < SILENT; i++) attackers.push(new RawConn(d.socket));
  const trickle = Buffer.concat([begin(1), record(4, encodeParams(getParams(`/${prefix}.x`)))]);
  const slow = [];
  for (let i = 0; i < SLOW; i++) {
    const c = new RawConn(d.socket);
    attackers.push(c);
    slow.push(c);
  }
  let attacking = true;
  const trickling = (async () => {
    for (let at = 0; attacking && at < trickle.length; at++) {
      await Promise.all(slow.map((c) => c.send(trickle.subarray(at, at + 1))));
      await sleep(50);
    }
  })();
  // The flood: polls naming random channels, four per request, as fast as answered, from
  // a worker thread (so the probe's times are pgfeed's, not those of a busy client loop).
  const flood = startNameFlood({ socket: d.socket, prefix: `${prefix}.r`, names: Infinity, workers: FLOOD_WORKERS, perRequest: 4, plain: true });
  await sleep(500);
  const attacked = await probeRound(probeCh);
  attacking = false;
  const flooded = await flood.stop();
  await trickling;
  const rssAfter = rssKiB(d.pid);

  // The held polls are all still there and wake on a publish.
  await publish(heldCh, 'h', { n: 2 });
  const answers = await Promise.all(held.map((c) => c.answer(1, 10000)));
  assert.equal(answers.filter((a) => a?.status === 200 && a.json.events[0]?.version === 2).length, HELD, 'every held poll woke with version 2');
  for (const c of [...held, ...attackers]) c.destroy();

  const ratio = attacked.median / quiet.median;
  t.diagnostic(
    `probe without attack: median ${quiet.median.toFixed(2)} ms, p90 ${quiet.p90.toFixed(2)}, max ${quiet.max.toFixed(2)}; ` +
      `during the attack: median ${attacked.median.toFixed(2)} ms, p90 ${attacked.p90.toFixed(2)}, max ${attacked.max.toFixed(2)}; ` +
      `ratio of medians ${ratio.toFixed(2)}`,
  );
  t.diagnostic(`flood: ${flooded.sent * 4} random channel names, answers ${JSON.stringify(flooded.statuses)}; RSS ${rssBefore} -> ${rssAfter} KiB`);
  assert.ok(attacked.p90 < 50, `probe p90 during the attack ${attacked.p90.toFixed(2)} ms`);
  assert.ok(ratio < 4, `probe median during the attack is ${ratio.toFixed(2)}x the quiet one`);
  assert.deepEqual(crashLines(fs.readFileSync(`${root}/stderr.log`, 'utf8')), []);
});
