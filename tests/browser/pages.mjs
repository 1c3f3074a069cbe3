// pages — what the browser tests share: Chromium's launch flags, a test
// whose failure shows the pages' errors and the server's log, orders
// written with SQL, and reading what the demo page listed (its #activity
// list: each live event is an <li data-version> whose title names the
// order) and its connection badge (#conn data-status / data-transport).
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { lit, sql } from '../e2e/lib/pg.mjs';

// From tests/node_modules (npm ci --prefix tests, which tests/run does).
export const { chromium } = await import('playwright-core').catch((err) => {
  throw new Error(`browser: cannot load playwright-core; run: npm ci --prefix tests (${err.message})`);
});

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Debian's Chromium, headless. */
export function launchChromium() {
  return chromium.launch({ executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium', args: CHROMIUM_ARGS });
}

const MENU = ['Espresso', 'Cortado', 'Iced tea', 'Croissant', 'Cappuccino', 'Banana bread', 'Flat white'];
let itemNo = 0;

/** Inserts one order with SQL and returns its id. */
export async function insertOrder() {
  itemNo++;
  const item = MENU[itemNo % MENU.length];
  const quantity = 1 + (itemNo % 4);
  const out = await sql(`INSERT INTO demo.orders (item, quantity) VALUES (${lit(item)}, ${quantity}) RETURNING id`);
  return Number(out);
}

/** insertOrder, retried while the database is coming back. */
export async function insertOrderRetrying(timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await insertOrder();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(200);
    }
  }
}

/** Waits until the demo page's badge shows one of statuses (and transport, if given). */
export async function waitStatus(page, statuses, transport, timeout = 15000) {
  await page.waitForFunction(
    ([s, t]) => {
      const conn = document.getElementById('conn');
      return s.includes(conn.dataset.status) && (!t || conn.dataset.transport === t);
    },
    [statuses, transport],
    { timeout },
  );
}

/** The live events the demo page listed, oldest first: [{version, title}]. */
export function listed(page) {
  return page.$$eval('#activity li[data-version]', (lis) =>
    lis.reverse().map((li) => ({ version: Number(li.dataset.version), title: li.querySelector('strong')?.textContent ?? '' })),
  );
}

/** Waits until the demo page listed a "New order #id" for each id. */
export async function waitForOrders(page, ids, timeout = 15000) {
  try {
    await page.waitForFunction(
      (want) => {
        const titles = new Set([...document.querySelectorAll('#activity li[data-version] strong')].map((s) => s.textContent));
        return want.every((id) => titles.has(`New order #${id}`));
      },
      ids,
      { timeout },
    );
  } catch (err) {
    const got = (await listed(page).catch(() => [])).map((e) => `${e.version}:${e.title}`);
    throw new Error(`the page did not list orders ${ids.join(', ')} within ${timeout} ms; it listed [${got.join(', ')}]\n${err.message}`);
  }
}

/**
 * Asserts the demo page listed exactly these new orders, in this order, each
 * once, and that the versions it listed are consecutive (nothing skipped).
 */
export async function assertExactlyOnce(page, ids) {
  const events = await listed(page);
  const inserts = events.filter((e) => e.title.startsWith('New order #')).map((e) => Number(e.title.slice('New order #'.length)));
  assert.deepEqual(inserts, ids, `new orders listed, in order: ${events.map((e) => `${e.version}:${e.title}`).join(', ')}`);
  const versions = events.map((e) => e.version);
  for (let i = 1; i < versions.length; i++) {
    assert.equal(versions[i], versions[i - 1] + 1, `consecutive versions, got ${versions.join(',')}`);
  }
  const received = await page.evaluate(() => window.pgfeedDemo.received);
  assert.equal(received, events.length, 'the page received as many events as it listed');
}

/**
 * Records a page's script errors (not the failed loads Chromium logs for a
 * killed stream or a 503 while the database restarts: those are expected).
 * @returns {string[]} filled as errors happen
 */
export function recordErrors(page) {
  const errors = [];
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !/Failed to load resource|net::ERR_|EventSource/.test(msg.text())) {
      errors.push(`console: ${msg.text()}`);
    }
  });
  return errors;
}

/**
 * A test function like it(), whose failure message carries the script errors
 * of the pages open and what the server logged.
 * @param {() => {errors: string[]}[]} pages  the pages open now (recordErrors)
 * @param {() => ({logs(): string} | undefined)} server
 * @param {() => Promise<void>} [settle]  runs after each test, passed or not
 * @returns {(name: string, fn: () => Promise<void>) => void}
 */
export function pageCheck(pages, server, settle) {
  return (name, fn) =>
    it(name, async () => {
      try {
        await fn();
      } catch (err) {
        const errors = pages().flatMap((p) => p.errors);
        err.message += `${errors.length ? `\npage errors:\n${errors.join('\n')}` : ''}\n${server()?.logs() ?? ''}`;
        throw err;
      } finally {
        await settle?.();
      }
    });
}
