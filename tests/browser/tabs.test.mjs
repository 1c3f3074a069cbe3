// Ten tabs of the demo page in one browser context share one connection
// (pgfeed.js's SharedFeed: a Web Locks leader, BroadcastChannel to the
// others), over HTTP/1.1, where Chromium allows six connections per origin:
// with a connection per tab the seventh tab would never load and the pages'
// own fetch calls would queue behind the held streams.
//
// All ten must load, all ten must list every order in order exactly once,
// a follower's form (its own fetch) must still work, and closing the leader
// tab must lose nothing: another tab takes over from the lowest cursor.
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { sql } from '../e2e/lib/pg.mjs';
import { crashLines } from '../e2e/lib/servers.mjs';
import { loadDemoSchema, startDemoServer } from './demo_server.mjs';
import { assertExactlyOnce, insertOrder, launchChromium, pageCheck, recordErrors, waitForOrders, waitStatus } from './pages.mjs';

const TABS = 10;

let server;
let browser;
let context;
/** @type {{page: import('playwright-core').Page, errors: string[], streams: Set<any>, opened: number}[]} */
const tabs = [];

/** The tabs holding an open feed stream or long poll now. */
const holders = () => tabs.filter((t) => t.streams.size > 0);

describe('ten tabs of the demo in one browser context', () => {
  before(async () => {
    await loadDemoSchema();
    server = await startDemoServer({ defines: { PGFEED_HEARTBEAT: 3 } });
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  });

  after(async () => {
    await context?.close().catch(() => {});
    await browser?.close();
    if (server) {
      await server.stop();
      server.cleanup();
    }
  });

  const check = pageCheck(() => tabs, () => server);

  check('all ten load and show live, over one held connection', async () => {
    for (let i = 0; i < TABS; i++) {
      const page = await context.newPage();
      const tab = { page, errors: recordErrors(page), streams: new Set(), opened: 0 };
      const held = (req) => new URL(req.url()).pathname.startsWith('/feed/') && (req.resourceType() === 'eventsource' || /[?&]wait=/.test(req.url()));
      page.on('request', (req) => {
        if (!held(req)) return;
        tab.streams.add(req);
        tab.opened++;
      });
      for (const end of ['requestfinished', 'requestfailed']) page.on(end, (req) => tab.streams.delete(req));
      tabs.push(tab);
      await page.goto(server.base + '/', { timeout: 10000 });
      await waitStatus(page, ['live'], undefined, 10000);
    }
    // The demo's Apache has no mod_http2: the six-connections-per-origin limit applies.
    const versions = new Set(server.accessLines().map((l) => /"[A-Z]+ \S+ (HTTP\/[\d.]+)"/.exec(l)?.[1]));
    assert.deepEqual([...versions], ['HTTP/1.1']);
    assert.equal(holders().length, 1, `one tab holds the feed (held: ${holders().length})`);
    assert.equal(holders()[0].streams.size, 1);
  });

  check('every tab lists every order once, in order; a follower’s own fetch works', async () => {
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await insertOrder());
    const follower = tabs.find((t) => t.streams.size === 0);
    await follower.page.fill('input[name=item]', 'Flat white');
    await follower.page.fill('input[name=quantity]', '2');
    await follower.page.click('button[type=submit]');
    await follower.page.waitForFunction(() => document.getElementById('form-message').textContent.startsWith('Placed'), null, { timeout: 5000 });
    ids.push(Number(await sql('SELECT max(id) FROM demo.orders')));
    for (const { page } of tabs) {
      await waitForOrders(page, ids, 10000);
      await assertExactlyOnce(page, ids);
    }
    assert.equal(holders().length, 1);
    globalThis.ordersSoFar = ids;
  });

  check('closing the leader tab loses nothing: another takes over within seconds', async () => {
    const ids = [...globalThis.ordersSoFar];
    const [leader] = holders();
    const closedAt = Date.now();
    await leader.page.close({ runBeforeUnload: false });
    tabs.splice(tabs.indexOf(leader), 1);
    // Orders written while no tab leads, and while the new leader connects.
    ids.push(await insertOrder());
    await sleep(100);
    ids.push(await insertOrder());
    const deadline = Date.now() + 5000;
    while (holders().length === 0 && Date.now() < deadline) await sleep(20);
    const takeover = Date.now() - closedAt;
    assert.equal(holders().length, 1, 'one new leader');
    process.stdout.write(`# a new leader held the feed ${takeover} ms after the leader tab closed\n`);
    assert.ok(takeover < 3000, `taken over within 3 s (${takeover} ms)`);
    ids.push(await insertOrder());
    for (const { page } of tabs) {
      await waitForOrders(page, ids, 10000);
      await assertExactlyOnce(page, ids);
      await waitStatus(page, ['live'], undefined, 5000);
    }
  });

  check('a frozen leader hands the connection over; nothing is lost or repeated', async () => {
    const all = await tabs[0].page.$$eval('#activity li[data-version] strong', (s) => s.map((x) => x.textContent));
    const known = all.filter((t) => t.startsWith('New order #')).map((t) => Number(t.slice(11))).reverse();
    const [leader] = holders();
    // Headless Chromium's Page.setWebLifecycleState freezes the page without
    // dispatching the page-lifecycle events a browser sends first (checked:
    // no freeze, no resume), so the test dispatches them around it.
    const cdp = await context.newCDPSession(leader.page);
    await leader.page.evaluate(() => document.dispatchEvent(new Event('freeze')));
    await cdp.send('Page.setWebLifecycleState', { state: 'frozen' });
    const deadline = Date.now() + 5000;
    while (!(holders().length === 1 && holders()[0] !== leader) && Date.now() < deadline) await sleep(20);
    assert.ok(holders().length === 1 && holders()[0] !== leader, `another tab holds the feed while the leader is frozen (holders: ${holders().map((t) => tabs.indexOf(t))}, leader ${tabs.indexOf(leader)}, its streams ${[...leader.streams].map((r) => r.url())})`);
    const more = [await insertOrder(), await insertOrder()];
    for (const t of tabs.filter((t) => t !== leader)) {
      await waitForOrders(t.page, [...known, ...more], 10000);
      await assertExactlyOnce(t.page, [...known, ...more]);
    }
    await cdp.send('Page.setWebLifecycleState', { state: 'active' });
    await leader.page.evaluate(() => document.dispatchEvent(new Event('resume')));
    await waitForOrders(leader.page, [...known, ...more], 10000);
    await assertExactlyOnce(leader.page, [...known, ...more]);
  });

  check('no script errors in any tab, and pgfeed logged no crash', async () => {
    assert.deepEqual(tabs.flatMap((t) => t.errors), []);
    assert.deepEqual(crashLines(server.logs()), [], 'crash lines in the logs');
  });
});
