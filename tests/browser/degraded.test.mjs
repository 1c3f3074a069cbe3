// A stopped database shows as `degraded` on the demo page, over SSE (an
// `event: status` frame at once) and over long polling (the held poll's
// timeout answered with `Pgfeed-Database: down`, then 503s saying
// "database": "down"; --max-wait is 3 s here so that takes seconds), and the page
// goes back to `live` and lists what was written meanwhile once PostgreSQL is
// back. Before, the page kept saying "Live · SSE" because heartbeats kept the
// stream looking healthy.
//
// The test stops the shared cluster (tests/pg/cluster.sh stop-fast, then
// start-again), so ctest runs it alone (RUN_SERIAL).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { cluster } from '../e2e/lib/resilience.mjs';
import { crashLines } from '../e2e/lib/servers.mjs';
import { loadDemoSchema, startDemoServer } from './demo_server.mjs';
import { assertExactlyOnce, insertOrder, insertOrderRetrying, launchChromium, recordErrors, waitForOrders, waitStatus } from './pages.mjs';

let server;
let browser;
const opened = [];

async function openDemo(query) {
  // A context per page: each holds its own connection, with its own transport.
  const context = await browser.newContext();
  const page = await context.newPage();
  opened.push({ context, errors: recordErrors(page) });
  await page.goto(`${server.base}/${query}`);
  await waitStatus(page, ['live']);
  return page;
}

describe('a stopped database in the demo page', () => {
  before(async () => {
    await loadDemoSchema();
    server = await startDemoServer({ defines: { PGFEED_HEARTBEAT: 3, PGFEED_MAX_WAIT: 3 } });
    browser = await launchChromium();
  });

  after(async () => {
    await cluster('start-again').catch(() => {});
    for (const { context } of opened) await context.close().catch(() => {});
    await browser?.close();
    if (server) {
      await server.stop();
      server.cleanup();
    }
  });

  it('shows degraded while PostgreSQL is stopped, then live again with nothing lost', async () => {
    try {
      const sse = await openDemo('');
      const longpoll = await openDemo('?transport=longpoll');
      const ids = [await insertOrder()];
      for (const page of [sse, longpoll]) await waitForOrders(page, ids);

      const stopped = Date.now();
      await cluster('stop-fast');
      for (const [name, page] of [['sse', sse], ['longpoll', longpoll]]) {
        await waitStatus(page, ['degraded'], undefined, 10000).catch((err) => {
          throw new Error(`${name}: the page did not show degraded within 10 s of the stop: ${err.message}`);
        });
        assert.match(await page.textContent('#conn-text'), /Degraded/);
      }
      process.stdout.write(`# both pages showed degraded ${Date.now() - stopped} ms after PostgreSQL stopped\n`);

      await cluster('start-again');
      ids.push(await insertOrderRetrying());
      for (const page of [sse, longpoll]) {
        await waitStatus(page, ['live'], undefined, 30000);
        await waitForOrders(page, ids, 30000);
        await assertExactlyOnce(page, ids);
      }
      assert.deepEqual(opened.flatMap((r) => r.errors), []);
      assert.deepEqual(crashLines(server.logs()), []);
    } catch (err) {
      err.message += `\n${server?.logs() ?? ''}`;
      throw err;
    }
  });
});
