// @ts-check
/**
 * demo.js — the pgfeed demo page: live order notifications and counters.
 *
 * How the counters stay right, whatever the connection does:
 *  1. GET /demo/orders answers every row of demo.orders plus the cursor of
 *     feed channel `orders` read in the same transaction as the rows (or
 *     before them, never after).
 *  2. subscribe('/feed', 'orders', {since: that cursor}) delivers every change
 *     after the snapshot, each once, in version order.
 *  3. Each event sets (insert, update) or removes (delete) one row by id in a
 *     Map, and the counters are computed from the Map.
 * Step 3 is idempotent: an event sets a row to its state at that version, so
 * replaying an event the snapshot already reflects converges to the same
 * state. Counting "+1 per insert" would double-count instead. A reset (the
 * cursor was pruned) reloads the snapshot; events that arrive meanwhile are
 * applied again on top of it.
 *
 * Deriving the counters from the feed's retained events alone would be wrong
 * as soon as retention prunes the first orders, so the snapshot is required.
 */
import { subscribe } from './pgfeed.js';

/** @typedef {import('./pgfeed.js').FeedEvent} FeedEvent */
/** @typedef {import('./pgfeed.js').FeedStatus} FeedStatus */
/** @typedef {import('./pgfeed.js').TransportMode} TransportMode */
/** @typedef {{id: number, item: string, quantity: number, created_at?: string}} Order */
/** @typedef {{orders: Order[], cursor: string}} Snapshot */

const FEED = document.body.dataset.feed ?? '/feed';
const API = document.body.dataset.api ?? '/demo/orders';
const CHANNEL = 'orders';
const MAX_ITEMS = 40;
/** Orders from the first snapshot listed under Activity before any event arrives. */
const RECENT_ORDERS = 6;
const MENU = ['Espresso', 'Flat white', 'Cappuccino', 'Croissant', 'Banana bread', 'Iced tea', 'Cortado'];
const MODES = /** @type {TransportMode[]} */ (['auto', 'sse', 'longpoll', 'poll']);

const state = {
  /** @type {Map<number, Order>} */
  orders: new Map(),
  /** Events received while a snapshot (re)loads, applied again after it. */
  /** @type {FeedEvent[] | null} */
  replay: null,
  reloadAgain: false,
  /** @type {import('./pgfeed.js').Subscription | null} */
  feed: null,
  received: 0,
};

/** @param {string} id */
const byId = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const number = new Intl.NumberFormat();
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

main();

function main() {
  bindForm();
  bindTransport();
  setInterval(refreshTimes, 30_000);
  void start();
}

// ---- data: snapshot + feed ----

async function start() {
  const snapshot = await untilLoaded();
  const mode = initialMode();
  state.feed = subscribe(FEED, CHANNEL, {
    since: snapshot.cursor,
    transport: mode,
    onEvent,
    onReset,
    onStatus: renderStatus,
  });
  showSnapshot(snapshot);
  showRecent(snapshot.orders);
  renderMode(mode);
  // Exposed for the browser tests and for poking around in devtools.
  Object.assign(window, { pgfeedDemo: state });
}

/** @returns {Promise<Snapshot>} */
async function loadSnapshot() {
  const res = await fetch(API, { headers: { Accept: 'application/json' }, cache: 'no-store' });
  const body = await res.json().catch(() => null);
  if (!res.ok) throw new Error(body?.detail ?? `GET ${API} answered ${res.status}`);
  if (!Array.isArray(body?.orders) || body.cursor == null) throw new Error(`GET ${API}: expected {orders, cursor}`);
  return { orders: body.orders, cursor: String(body.cursor) };
}

/** Retries the snapshot with a growing delay, saying so on the page. */
async function untilLoaded() {
  for (let delay = 1000; ; delay = Math.min(delay * 2, 15_000)) {
    try {
      const snapshot = await loadSnapshot();
      showBanner('');
      return snapshot;
    } catch (e) {
      showBanner(`Couldn't load the orders (${e instanceof Error ? e.message : e}). Retrying…`);
      await new Promise((resolve) => setTimeout(resolve, delay * (0.5 + Math.random() / 2)));
    }
  }
}

/**
 * Replaces the rows with a snapshot, then re-applies what arrived while it loaded.
 * @param {Snapshot} snapshot
 */
function showSnapshot(snapshot) {
  state.orders = new Map(snapshot.orders.map((o) => [o.id, o]));
  for (const event of state.replay ?? []) applyChange(event);
  state.replay = null;
  renderTotals();
  renderVersion();
}

/**
 * Lists the newest orders of the first snapshot, so the page opens on what
 * exists rather than on an empty list; live events go above them.
 * @param {Order[]} orders
 */
function showRecent(orders) {
  const recent = [...orders].sort((a, b) => a.id - b.id).slice(-RECENT_ORDERS);
  for (const order of recent) {
    addActivity({ kind: 'insert', title: `Order #${order.id}`, detail: `${order.quantity} × ${order.item}` },
      order.created_at, { past: true });
  }
}

/** @param {FeedEvent} event */
function onEvent(event) {
  state.received++;
  state.replay?.push(event);
  applyChange(event);
  addActivity(describe(event), event.time, { version: event.version });
  renderTotals();
  renderVersion();
}

/**
 * The feed's cursor is gone (pruned, or the feed restarted): events were
 * missed, so the rows are reloaded.
 * @param {import('./pgfeed.js').ResetInfo} info
 */
async function onReset(info) {
  if (state.replay) {
    state.reloadAgain = true; // a reload is running; it may predate this gap
    return;
  }
  do {
    state.reloadAgain = false;
    state.replay = [];
    showSnapshot(await untilLoaded());
  } while (state.reloadAgain);
  const why = info.reason === 'reset' ? 'The feed was reset' : 'Missed changes were pruned';
  addActivity({ kind: 'system', title: 'Caught up', detail: `${why}; reloaded ${number.format(state.orders.size)} orders.` });
}

/**
 * Sets or removes one row. Idempotent, see the banner.
 * @param {FeedEvent} event
 */
function applyChange(event) {
  const data = /** @type {{new?: Order, old?: Order} | null} */ (event.data);
  if (event.type === 'delete') {
    const id = data?.old?.id;
    if (id != null) state.orders.delete(id);
  } else if (data?.new?.id != null) {
    state.orders.set(data.new.id, data.new);
  }
}

// ---- rendering ----

function renderTotals() {
  let items = 0;
  for (const order of state.orders.values()) items += Number(order.quantity) || 0;
  setStat('stat-orders', number.format(state.orders.size));
  setStat('stat-items', number.format(items));
}

function renderVersion() {
  setStat('stat-version', state.feed?.cursor ?? '–');
}

/**
 * Updates a counter and makes a change visible with a short pulse.
 * @param {string} id
 * @param {string} text
 */
function setStat(id, text) {
  const el = byId(id);
  if (el.textContent === text) return;
  el.textContent = text;
  el.classList.remove('bump');
  void el.offsetWidth; // restart the animation
  el.classList.add('bump');
}

/** @param {string} text */
function showBanner(text) {
  const banner = byId('snapshot-error');
  banner.textContent = text;
  banner.hidden = !text;
}

/**
 * @typedef {object} Activity
 * @property {'insert' | 'update' | 'delete' | 'system'} kind
 * @property {string} title
 * @property {string} detail
 */

/**
 * What an order event means to a person.
 * @param {FeedEvent} event
 * @returns {Activity}
 */
function describe(event) {
  const data = /** @type {{new?: Order, old?: Order} | null} */ (event.data);
  const row = data?.new ?? data?.old;
  const label = row ? `${row.quantity} × ${row.item}` : 'an order';
  if (event.type === 'insert') return { kind: 'insert', title: `New order #${row?.id ?? '?'}`, detail: label };
  if (event.type === 'delete') return { kind: 'delete', title: `Order #${row?.id ?? '?'} removed`, detail: label };
  if (event.type === 'update') return { kind: 'update', title: `Order #${row?.id ?? '?'} changed`, detail: changes(data?.old, data?.new) || label };
  return { kind: 'system', title: event.type, detail: `version ${event.version}` };
}

/**
 * "quantity 2 → 3" for the fields that differ.
 * @param {Order | undefined} before
 * @param {Order | undefined} after
 */
function changes(before, after) {
  if (!before || !after) return '';
  return /** @type {const} */ (['item', 'quantity'])
    .filter((k) => before[k] !== after[k])
    .map((k) => `${k} ${before[k]} → ${after[k]}`)
    .join(', ');
}

/**
 * Prepends an entry to the activity list.
 * @param {Activity} activity
 * @param {string} [time]  ISO time of the change; now if absent
 * @param {{past?: boolean, version?: number}} [options]
 *   past: from the snapshot, not a live event (shown without the arrival
 *   highlight and not counted); version: the event's feed version
 */
function addActivity(activity, time = new Date().toISOString(), { past = false, version } = {}) {
  const list = byId('activity');
  const li = document.createElement('li');
  li.className = `activity-item ${activity.kind}${past ? ' past' : ''}`;
  if (version != null) li.dataset.version = String(version);
  const icon = el('span', 'activity-icon', { insert: '+', update: '✎', delete: '−', system: '↻' }[activity.kind]);
  icon.setAttribute('aria-hidden', 'true');
  const text = el('div', 'activity-text');
  text.append(el('strong', '', activity.title), el('span', 'muted', activity.detail));
  const when = el('time', 'activity-time', ago(time));
  when.dateTime = time;
  li.append(icon, text, when);
  list.prepend(li);
  while (list.children.length > MAX_ITEMS) list.lastElementChild?.remove();
  byId('activity-empty').hidden = true;
  if (state.received > 0) byId('activity-count').textContent = `${number.format(state.received)} live ${state.received === 1 ? 'event' : 'events'}`;
}

/**
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {string} className
 * @param {string} [text]
 */
function el(tag, className, text = '') {
  const node = document.createElement(tag);
  node.className = className;
  node.textContent = text;
  return node;
}

/** @param {string} iso */
function ago(iso) {
  const seconds = Math.round((Date.parse(iso) - Date.now()) / 1000);
  if (!Number.isFinite(seconds)) return '';
  if (Math.abs(seconds) < 45) return 'just now';
  if (Math.abs(seconds) < 3600) return relative.format(Math.round(seconds / 60), 'minute');
  if (Math.abs(seconds) < 86_400) return relative.format(Math.round(seconds / 3600), 'hour');
  return relative.format(Math.round(seconds / 86_400), 'day');
}

function refreshTimes() {
  for (const t of document.querySelectorAll('time.activity-time')) {
    t.textContent = ago(/** @type {HTMLTimeElement} */ (t).dateTime);
  }
}

const STATUS_TEXT = {
  connecting: 'Connecting…',
  live: 'Live',
  polling: 'Polling',
  degraded: 'Degraded — database unreachable',
  offline: 'Offline — retrying',
  closed: 'Closed',
};
const TRANSPORT_SHORT = { sse: 'SSE', longpoll: 'long poll', poll: 'short poll' };
const TRANSPORT_TEXT = { sse: 'Server-Sent Events', longpoll: 'long polling', poll: 'ETag polling' };
const TRANSPORT_NOTE = {
  sse: 'One held stream: events arrive the moment they commit.',
  longpoll: 'One held request at a time: answered as soon as an event commits.',
  poll: 'Conditional requests, more often while busy, paused while this tab is hidden.',
};

/**
 * @param {FeedStatus} status
 * @param {import('./pgfeed.js').Transport | null} transport
 */
function renderStatus(status, transport) {
  const conn = byId('conn');
  conn.dataset.status = status;
  conn.dataset.transport = transport ?? '';
  const showTransport = transport && (status === 'live' || status === 'connecting');
  byId('conn-text').textContent = showTransport ? `${STATUS_TEXT[status]} · ${TRANSPORT_SHORT[transport]}` : STATUS_TEXT[status];
  byId('transport-note').textContent = transport ? `Now using ${TRANSPORT_TEXT[transport]}. ${TRANSPORT_NOTE[transport]}` : '';
}

// ---- controls ----

function bindTransport() {
  byId('transport').addEventListener('click', (e) => {
    const button = /** @type {HTMLElement} */ (e.target).closest('button[data-mode]');
    const mode = /** @type {TransportMode | undefined} */ (/** @type {HTMLElement | null} */ (button)?.dataset.mode);
    if (!mode || !state.feed) return;
    state.feed.setTransport(mode);
    renderMode(mode);
    const url = new URL(location.href);
    if (mode === 'auto') url.searchParams.delete('transport');
    else url.searchParams.set('transport', mode);
    history.replaceState(null, '', url);
  });
}

/** ?transport=poll (etc.) forces a transport from the first request on. */
function initialMode() {
  const mode = /** @type {TransportMode} */ (new URLSearchParams(location.search).get('transport') ?? 'auto');
  return MODES.includes(mode) ? mode : 'auto';
}

/** @param {TransportMode} mode */
function renderMode(mode) {
  for (const button of byId('transport').querySelectorAll('button[data-mode]')) {
    button.setAttribute('aria-pressed', String(/** @type {HTMLElement} */ (button).dataset.mode === mode));
  }
}

function bindForm() {
  const form = /** @type {HTMLFormElement} */ (byId('order-form'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const data = new FormData(form);
    void placeOrder(String(data.get('item')).trim(), Number(data.get('quantity')));
  });
  byId('random-order').addEventListener('click', () => {
    void placeOrder(MENU[Math.floor(Math.random() * MENU.length)], 1 + Math.floor(Math.random() * 4));
  });
}

/**
 * Inserts a row. The page does not add it itself: it appears when its event
 * comes back through the feed, like everyone else's.
 * @param {string} item
 * @param {number} quantity
 */
async function placeOrder(item, quantity) {
  const form = /** @type {HTMLFormElement} */ (byId('order-form'));
  const message = byId('form-message');
  const buttons = form.querySelectorAll('button');
  buttons.forEach((b) => { b.disabled = true; });
  message.className = 'form-message';
  message.textContent = 'Placing…';
  try {
    const res = await fetch(API, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ item, quantity }),
    });
    const body = await res.json().catch(() => null);
    if (!res.ok) throw new Error(body?.detail ?? body?.title ?? `the server answered ${res.status}`);
    message.classList.add('ok');
    message.textContent = `Placed: ${quantity} × ${item}`;
    /** @type {HTMLInputElement} */ (form.elements.namedItem('item')).value = '';
  } catch (e) {
    message.classList.add('error');
    message.textContent = `Couldn't place the order: ${e instanceof Error ? e.message : e}`;
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}
