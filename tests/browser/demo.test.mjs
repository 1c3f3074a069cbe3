// The demo page in headless Chromium against the real stack: PostgreSQL (the
// ctest fixture's cluster), Apache + mod_fcgid with apache/pgfeed-fcgid.conf,
// www/ with pgfeed.js, and the demo backend www/demo/orders.py, all through
// www/demo/apache.conf as www/demo.sh runs them.
//
// Rows are written with SQL (or through the page's form) and must show up on
// the page in order, each exactly once, whatever happens in between: pgfeed
// killed mid-stream, PostgreSQL restarted, any forced transport. The page
// under test reports what it received through its activity list: each live
// event is an <li data-version> whose title names the order.
//
// The test restarts the shared cluster (tests/pg/cluster.sh restart), so
// ctest runs it alone (RUN_SERIAL). The screenshot goes to
// $PGFEED_BROWSER_OUT (the build dir under ctest) or the working directory.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { sql } from '../e2e/lib/pg.mjs';
import { cluster } from '../e2e/lib/resilience.mjs';
import { crashLines } from '../e2e/lib/servers.mjs';
import { loadDemoSchema, startDemoServer } from './demo_server.mjs';
import { assertExactlyOnce, insertOrder, insertOrderRetrying, launchChromium, listed, pageCheck, recordErrors, waitForOrders, waitStatus } from './pages.mjs';

const SHOT = path.join(process.env.PGFEED_BROWSER_OUT || process.cwd(), 'demo.png');

let server;
let browser;
/** Every page opened, with what it did; checked for script errors at the end. */
const opened = [];
/** pgfeed processes the tests killed on purpose (their deaths are logged). */
const killed = [];
/**
 * Opens the demo page in a fresh context and waits until its feed is up.
 * @param {string} [query]  e.g. '?transport=poll'
 * @param {string[]} [statuses]  #conn data-status values that count as up
 */
async function openDemo(query = '', statuses = ['live']) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const record = { page, context, requests: [], errors: [] };
  opened.push(record);
  page.on('request', (req) => {
    if (new URL(req.url()).pathname.startsWith('/feed/')) {
      record.requests.push({ url: req.url(), type: req.resourceType(), headers: req.headers(), at: Date.now() });
    }
  });
  record.errors = recordErrors(page);
  await page.goto(`${server.base}/${query}`);
  await waitStatus(page, statuses);
  return record;
}

/** Counts what the page shows and what the table holds. */
async function assertTotals(page) {
  const [count, items] = (await sql('SELECT count(*), coalesce(sum(quantity), 0) FROM demo.orders')).split('|');
  await page.waitForFunction(
    ([c, i]) => document.getElementById('stat-orders').textContent === c && document.getElementById('stat-items').textContent === i,
    [Number(count).toLocaleString(), Number(items).toLocaleString()],
    { timeout: 5000 },
  ).catch(async () => {
    const shown = await page.evaluate(() => [document.getElementById('stat-orders').textContent, document.getElementById('stat-items').textContent]);
    assert.fail(`totals: the page shows ${shown.join(' orders, ')} items; the table has ${count} orders, ${items} items`);
  });
}

/**
 * Makes the page see itself hidden or visible. Headless Chromium 156 keeps
 * every page visible: minimizing its window (Browser.setWindowBounds), a
 * background tab (Target.createTarget background), another page brought to
 * the front, and Page.setWebLifecycleState all leave visibilityState at
 * 'visible' (checked). So the document's visibilityState is overridden and
 * visibilitychange dispatched, which is what the page and pgfeed.js read.
 */
function setVisibility(page, state) {
  return page.evaluate((s) => {
    if (!('__visibility' in window)) {
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => window.__visibility });
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => window.__visibility === 'hidden' });
    }
    window.__visibility = s;
    document.dispatchEvent(new Event('visibilitychange'));
  }, state);
}

/** Access-log lines of the feed's requests (GET /feed/orders...). */
function feedLines() {
  return server.accessLines().filter((l) => l.includes('"GET /feed/orders'));
}

async function closeAll() {
  for (const { context } of opened.splice(0)) await context.close().catch(() => {});
}

describe('demo page in Chromium', () => {
  const pageErrors = [];

  before(async () => {
    await loadDemoSchema();
    // Short heartbeats: a closed page's held stream frees its pgfeed process
    // (one per held request under mod_fcgid) within seconds.
    server = await startDemoServer({ defines: { PGFEED_HEARTBEAT: 3 } });
    browser = await launchChromium();
  });

  after(async () => {
    for (const r of opened) pageErrors.push(...r.errors);
    await closeAll();
    await browser?.close();
    if (server) {
      await server.stop();
      server.cleanup();
    }
  });

  /** Each test ends with its pages closed, their errors kept for the last one. */
  const check = pageCheck(() => opened, () => server, async () => {
    for (const r of opened) pageErrors.push(...r.errors);
    await closeAll();
  });

  check('rows written with SQL and through the form appear in order, and the totals follow', async () => {
    const { page, requests } = await openDemo();
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await insertOrder());
    await sql(`UPDATE demo.orders SET quantity = quantity + 1 WHERE id = ${ids[0]}`);
    await sql(`DELETE FROM demo.orders WHERE id = ${ids[1]}`);
    await waitForOrders(page, ids);
    await page.waitForFunction(() => document.querySelectorAll('#activity li[data-version]').length >= 7, null, { timeout: 5000 });
    await assertExactlyOnce(page, ids);
    const titles = (await listed(page)).map((e) => e.title);
    assert.deepEqual(titles.slice(5), [`Order #${ids[0]} changed`, `Order #${ids[1]} removed`]);
    await assertTotals(page);
    assert.ok(requests.some((r) => r.type === 'eventsource'), 'auto mode reads the feed over SSE');

    // The form posts to /demo/orders; the row comes back through the feed.
    await page.fill('input[name=item]', 'Flat white');
    await page.fill('input[name=quantity]', '2');
    await page.click('button[type=submit]');
    await page.waitForFunction(() => document.getElementById('form-message').textContent.startsWith('Placed'), null, { timeout: 10000 });
    const placed = Number(await sql('SELECT max(id) FROM demo.orders'));
    await waitForOrders(page, [placed]);
    await assertExactlyOnce(page, [...ids, placed]);
    await assertTotals(page);

    // A bad order is refused with the backend's own words.
    await page.fill('input[name=item]', ' ');
    await page.evaluate(() => { document.querySelector('input[name=item]').required = false; });
    await page.click('button[type=submit]');
    await page.waitForFunction(() => document.getElementById('form-message').classList.contains('error'), null, { timeout: 10000 });
    assert.match(await page.textContent('#form-message'), /'item' must be 1 to 80 characters/);

    await page.fill('input[name=item]', '');
    await page.evaluate(() => {
      // A settled page for the picture: no arrival highlight, no focus ring.
      document.activeElement?.blur();
      document.getElementById('form-message').textContent = '';
    });
    await sleep(700);
    await page.screenshot({ path: SHOT });
    process.stdout.write(`# screenshot of the demo page: ${SHOT}\n`);
  });

  check('killing pgfeed mid-stream loses nothing: every row appears exactly once', async () => {
    const { page } = await openDemo();
    const before = server.pgfeedPids();
    assert.ok(before.length > 0, 'mod_fcgid runs pgfeed for the open stream');
    const ids = [];
    for (let i = 0; i < 12; i++) {
      ids.push(await insertOrder());
      if (i === 3) {
        for (const pid of server.pgfeedPids()) {
          process.kill(pid, 'SIGKILL');
          killed.push(pid);
        }
      }
      await sleep(150);
    }
    await waitForOrders(page, ids, 20000);
    await assertExactlyOnce(page, ids);
    await assertTotals(page);
    const now = server.pgfeedPids();
    assert.ok(now.some((pid) => !killed.includes(pid)), `mod_fcgid started pgfeed again (killed ${killed.join(', ')}, now ${now.join(', ')})`);
  });

  check('restarting PostgreSQL mid-stream loses nothing', async () => {
    const { page } = await openDemo();
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(await insertOrder());
    await waitForOrders(page, ids);
    const restart = cluster('restart');
    // Writers keep trying while the database is away, as applications do.
    for (let i = 0; i < 3; i++) ids.push(await insertOrderRetrying());
    await restart;
    for (let i = 0; i < 2; i++) ids.push(await insertOrderRetrying());
    await waitForOrders(page, ids, 25000);
    await assertExactlyOnce(page, ids);
    await assertTotals(page);
    await waitStatus(page, ['live']);
  });

  for (const [mode, up] of [['sse', 'live'], ['longpoll', 'live'], ['poll', 'polling']]) {
    check(`transport=${mode} forced from the URL works on its own`, async () => {
      const { page, requests } = await openDemo(`?transport=${mode}`, [up]);
      await waitStatus(page, [up], mode);
      const ids = [await insertOrder(), await insertOrder()];
      await waitForOrders(page, ids);
      await assertExactlyOnce(page, ids);
      assert.equal(await page.evaluate(() => window.pgfeedDemo.feed.transport), mode);
      const streams = requests.filter((r) => r.type === 'eventsource');
      const longPolls = requests.filter((r) => r.type === 'fetch' && /[?&]wait=/.test(r.url));
      const shortPolls = requests.filter((r) => r.type === 'fetch' && !/[?&]wait=/.test(r.url));
      const seen = requests.map((r) => `${r.type} ${r.url}`).join('\n');
      if (mode === 'sse') {
        assert.ok(streams.length >= 1, `an EventSource request:\n${seen}`);
        assert.equal(longPolls.length + shortPolls.length, 0, `no polls:\n${seen}`);
      } else if (mode === 'longpoll') {
        assert.ok(longPolls.length >= 1, `wait= requests:\n${seen}`);
        assert.equal(streams.length + shortPolls.length, 0, `only long polls:\n${seen}`);
      } else {
        assert.ok(shortPolls.length >= 2, `short polls:\n${seen}`);
        assert.equal(streams.length + longPolls.length, 0, `only short polls:\n${seen}`);
        assert.ok(shortPolls.slice(1).every((r) => /^"\d+"$/.test(r.headers['if-none-match'] ?? '')), `conditional polls:\n${seen}`);
      }
    });
  }

  check('a hidden tab pauses short polling and catches up at once when shown', async () => {
    const { page, requests } = await openDemo('?transport=poll', ['polling']);
    const first = await insertOrder();
    await waitForOrders(page, [first]); // news: the next poll is due in 2 s

    await setVisibility(page, 'hidden');
    const hiddenAt = Date.now();
    await sleep(300); // a poll already on its way may finish
    const serverBefore = feedLines().length;
    const whileHidden = [await insertOrder(), await insertOrder()];
    // Visible, the page would poll at 2 s and 3 s from its last answer, which came
    // before hiddenAt: 3.5 s more covers both.
    await sleep(3500);
    const pageRequests = requests.filter((r) => r.at > hiddenAt + 100);
    assert.deepEqual(pageRequests.map((r) => r.url), [], 'no feed request from the hidden page');
    assert.equal(feedLines().length, serverBefore, 'the server saw no feed request while the page was hidden');
    const titles = (await listed(page)).map((e) => e.title);
    assert.ok(!titles.includes(`New order #${whileHidden[0]}`), 'nothing new arrived while hidden');

    const shownAt = Date.now();
    await setVisibility(page, 'visible');
    await waitForOrders(page, whileHidden, 3000);
    const resumed = requests.find((r) => r.at >= shownAt);
    assert.ok(resumed && resumed.at - shownAt < 1000, `polling resumed at once when shown (after ${resumed ? resumed.at - shownAt : '∞'} ms)`);
    await assertExactlyOnce(page, [first, ...whileHidden]);
  });

  check('no script errors on any page, and pgfeed logged no crash', async () => {
    assert.deepEqual(pageErrors, []);
    // mod_fcgid logs the deaths the restart test caused; only those are expected.
    const bad = crashLines(server.logs()).filter((line) => !killed.some((pid) => line.includes(`(${pid})`) || line.includes(` ${pid} `)));
    assert.deepEqual(bad, [], 'crash lines in the logs');
  });
});
