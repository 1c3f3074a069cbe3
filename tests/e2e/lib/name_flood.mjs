// name_flood — one client asking for many distinct random channel names over
// raw FastCGI: one channel in the path, several per request, short polls from
// the oldest and from "now", long polls held beside the rest (or, `plain`,
// only requests naming perRequest channels without a cursor). It runs in a
// worker thread, so that a probe timed on the test's own thread measures
// pgfeed, not an event loop busy with the flood.
import { randomBytes } from 'node:crypto';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

import { timedGet } from './fcgi_raw.mjs';

/**
 * Starts flooding socketPath with `names` distinct names (Infinity: until
 * stopped) prefixed by prefix. `result` resolves with {sent, ms, statuses:
 * [[status, count]], unreachable, busy: [answers]} once every name was asked
 * for, or once stop() was called and the requests under way are answered.
 * @param {{socket: string, prefix: string, names: number, workers?: number,
 *          perRequest?: number, longAtOnce?: number, plain?: boolean}} options
 */
export function startNameFlood(options) {
  const w = new Worker(new URL(import.meta.url), { workerData: { nameFlood: options } });
  const result = new Promise((resolve, reject) => {
    w.once('message', (r) => {
      w.terminate();
      resolve(r);
    });
    w.once('error', reject);
  });
  return {
    result,
    stop: () => {
      w.postMessage('stop');
      return result;
    },
  };
}

export const runNameFlood = (options) => startNameFlood(options).result;

let stopping = false;

// One request of the plan: its names, and how it asks for them.
function* plan({ prefix, names: total, perRequest = 8, plain = false }) {
  let n = 0;
  let i = 0;
  const name = () => `${prefix}.${(n++).toString(36)}${randomBytes(4).toString('hex')}`;
  while (n < total && !stopping) {
    if (plain) {
      yield { path: '/', query: Array.from({ length: perRequest }, () => `channel=${name()}`).join('&') };
      continue;
    }
    const kind = i++ % 10;
    if (kind === 0) {
      yield { path: `/${name()}`, query: '' }; // one channel in the path, from the oldest
      continue;
    }
    const names = Array.from({ length: Math.min(perRequest, total - n) }, name);
    const channels = names.map((c) => `channel=${c}`).join('&');
    if (kind === 1) yield { path: '/', query: `${channels}&since=now&wait=1`, long: true };
    else if (kind <= 4) yield { path: '/', query: `${channels}&since=now` };
    else yield { path: '/', query: `${channels}&since=0` };
  }
}

async function flood(options) {
  const { socket, workers = 32, longAtOnce = 128 } = options;
  const statuses = new Map();
  const busy = [];
  let unreachable = 0;
  let sent = 0;
  const count = (a) => {
    sent++;
    statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
    if (a.status === 503 && /database is unreachable/.test(a.body)) unreachable++;
    else if (a.status === 503 && busy.length < 100) busy.push({ headers: a.headers, json: a.json });
  };
  const requests = plan(options);
  const held = new Set(); // long polls wait beside the workers: their wait costs no throughput
  const started = Date.now();
  await Promise.all(
    Array.from({ length: workers }, async () => {
      for (let r = requests.next(); !r.done; r = requests.next()) {
        if (!r.value.long) {
          count(await timedGet(socket, r.value.path, r.value.query));
          continue;
        }
        while (held.size >= longAtOnce) await Promise.race(held);
        const p = timedGet(socket, r.value.path, r.value.query).then(count);
        held.add(p);
        p.finally(() => held.delete(p));
      }
    }),
  );
  await Promise.all(held);
  return { sent, ms: Date.now() - started, statuses: [...statuses], unreachable, busy };
}

if (!isMainThread && workerData?.nameFlood) {
  parentPort.on('message', (m) => {
    stopping = m === 'stop';
  });
  parentPort.postMessage(await flood(workerData.nameFlood));
}
