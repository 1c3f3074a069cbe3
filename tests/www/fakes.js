// @ts-check
/**
 * Fakes for the pgfeed client's injectable dependencies: a clock whose time
 * only moves when a test says so, a server whose requests a test answers one
 * by one, an EventSource a test drives, and a document whose visibility a
 * test flips. Together they run the client's whole state machine without a
 * network or a real second passing.
 */

/** Lets every pending promise continuation run (fetch answers, async steps). */
export function flush() {
  return new Promise((resolve) => setImmediate(resolve));
}

export class FakeClock {
  now = 0;
  #seq = 0;
  /** @type {Map<number, {at: number, fn: () => void}>} */
  timers = new Map();

  setTimeout = (/** @type {() => void} */ fn, /** @type {number} */ ms) => {
    const id = ++this.#seq;
    this.timers.set(id, { at: this.now + Math.max(0, ms || 0), fn });
    return id;
  };

  clearTimeout = (/** @type {number} */ id) => {
    this.timers.delete(id);
  };

  /** Moves time forward, firing due timers in order and settling promises after each. */
  async advance(/** @type {number} */ ms) {
    if (!Number.isFinite(ms)) throw new RangeError('advance() needs a finite time; is a timer pending?');
    const end = this.now + ms;
    await flush();
    for (;;) {
      /** @type {[number, {at: number, fn: () => void}] | null} */
      let next = null;
      for (const [id, t] of this.timers) {
        if (t.at <= end && (next === null || t.at < next[1].at || (t.at === next[1].at && id < next[0]))) next = [id, t];
      }
      if (next === null) break;
      this.timers.delete(next[0]);
      this.now = next[1].at;
      next[1].fn();
      await flush();
    }
    this.now = end;
    await flush();
  }

  /** Delay until the earliest pending timer (Infinity when none). */
  nextDelay() {
    let at = Infinity;
    for (const t of this.timers.values()) at = Math.min(at, t.at);
    return at - this.now;
  }

  get pending() {
    return this.timers.size;
  }
}

/**
 * @typedef {object} FakeRequest
 * @property {string} url
 * @property {URLSearchParams} params
 * @property {string} path
 * @property {Record<string, string>} headers
 * @property {any} init
 * @property {boolean} settled
 * @property {boolean} aborted
 * @property {(status: number, body?: any, headers?: Record<string, string>) => void} respond
 * @property {(error?: Error) => void} fail
 * @property {() => {send: (text: string) => void, end: () => void}} stream
 *   answers 200 text/event-stream and returns the writer of its body
 */

export class FakeServer {
  /** @type {FakeRequest[]} */
  requests = [];
  /** Answers each new request, if set (otherwise tests answer by hand). */
  /** @type {((req: FakeRequest) => void) | null} */
  handler = null;

  fetch = (/** @type {string} */ url, /** @type {any} */ init = {}) =>
    new Promise((resolve, reject) => {
      const parsed = new URL(url, 'http://page.test');
      /** @type {FakeRequest} */
      const req = {
        url,
        params: parsed.searchParams,
        path: parsed.pathname,
        headers: init.headers ?? {},
        init,
        settled: false,
        aborted: false,
        respond(status, body, headers = {}) {
          if (req.settled) return;
          settle();
          resolve(fakeResponse(status, body, headers));
        },
        fail(error = new TypeError('Failed to fetch')) {
          if (req.settled) return;
          settle();
          reject(error);
        },
        stream() {
          /** @type {ReadableStreamDefaultController<Uint8Array>} */
          let controller;
          const body = new ReadableStream({ start: (c) => { controller = c; } });
          const encoder = new TextEncoder();
          let open = true;
          // Aborting the request errors the body, as a browser's fetch does.
          init.signal?.addEventListener('abort', () => {
            if (open) controller.error(new DOMException('The operation was aborted.', 'AbortError'));
            open = false;
          }, { once: true });
          req.settled = true;
          resolve({ ...fakeResponse(200, undefined, { 'Content-Type': 'text/event-stream' }), body });
          return {
            send: (text) => { if (open) controller.enqueue(encoder.encode(text)); },
            end: () => { if (open) controller.close(); open = false; },
          };
        },
      };
      const onAbort = () => {
        req.aborted = !req.settled;
        req.fail(new DOMException('The operation was aborted.', 'AbortError'));
      };
      init.signal?.addEventListener('abort', onAbort, { once: true });
      const settle = () => {
        req.settled = true;
        init.signal?.removeEventListener('abort', onAbort);
      };
      this.requests.push(req);
      this.handler?.(req);
    });

  /** Requests not yet answered. */
  get open() {
    return this.requests.filter((r) => !r.settled);
  }

  get last() {
    return this.requests[this.requests.length - 1];
  }
}

/**
 * @param {number} status
 * @param {any} body
 * @param {Record<string, string>} headers
 */
function fakeResponse(status, body, headers) {
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  return {
    status,
    ok: status >= 200 && status < 300,
    headers: { get: (/** @type {string} */ name) => lower[name.toLowerCase()] ?? null },
    json: async () => {
      if (body === undefined) throw new SyntaxError('Unexpected end of JSON input');
      return body;
    },
  };
}

/** A fresh EventSource class whose instances a test drives. */
export function fakeEventSource() {
  /** @type {any[]} */
  const instances = [];
  class FakeEventSource {
    static instances = instances;
    static CONNECTING = 0;
    static OPEN = 1;
    static CLOSED = 2;
    /** @type {((e: any) => void) | null} */ onopen = null;
    /** @type {((e: any) => void) | null} */ onmessage = null;
    /** @type {((e: any) => void) | null} */ onerror = null;
    /** @type {Record<string, ((e: any) => void)[]>} */ listeners = {};
    readyState = 0;
    closed = false;

    /** @param {string} url @param {any} init */
    constructor(url, init) {
      this.url = url;
      this.init = init;
      this.params = new URL(url, 'http://page.test').searchParams;
      instances.push(this);
    }

    /** @param {string} type @param {(e: any) => void} fn */
    addEventListener(type, fn) {
      (this.listeners[type] ??= []).push(fn);
    }

    /** @param {string} type @param {(e: any) => void} fn */
    removeEventListener(type, fn) {
      this.listeners[type] = (this.listeners[type] ?? []).filter((f) => f !== fn);
    }

    close() {
      this.closed = true;
      this.readyState = 2;
    }

    // ---- what the "server" does to the stream ----
    open() {
      this.readyState = 1;
      this.onopen?.({ type: 'open' });
    }

    /** An unnamed event: `id: <id>` + `data: <json>`. */
    message(/** @type {any} */ data, /** @type {string} */ id = '') {
      this.onmessage?.({ type: 'message', data: JSON.stringify(data), lastEventId: id });
    }

    /** A named event such as `event: reset`. */
    emit(/** @type {string} */ type, /** @type {any} */ data, /** @type {string} */ id = '') {
      for (const fn of this.listeners[type] ?? []) fn({ type, data: JSON.stringify(data), lastEventId: id });
    }

    /** The connection failed (closed: never got a stream) or dropped (will reconnect). */
    error(/** @type {boolean} */ closed = false) {
      this.readyState = closed ? 2 : 0;
      this.onerror?.({ type: 'error' });
    }
  }
  return FakeEventSource;
}

export class FakeDocument {
  visibilityState = 'visible';
  /** @type {Set<() => void>} */
  listeners = new Set();

  /** Page-lifecycle listeners (freeze, resume). @type {Map<string, Set<() => void>>} */
  lifecycle = new Map();

  /** @param {string} type @param {() => void} fn */
  addEventListener(type, fn) {
    if (type === 'visibilitychange') this.listeners.add(fn);
    else this.lifecycle.set(type, (this.lifecycle.get(type) ?? new Set()).add(fn));
  }

  /** @param {string} type @param {() => void} fn */
  removeEventListener(type, fn) {
    if (type === 'visibilitychange') this.listeners.delete(fn);
    else this.lifecycle.get(type)?.delete(fn);
  }

  /** Dispatches a page-lifecycle event such as 'freeze'. @param {string} type */
  fire(type) {
    for (const fn of [...(this.lifecycle.get(type) ?? [])]) fn();
  }

  /** @param {'visible' | 'hidden'} state */
  show(state) {
    this.visibilityState = state;
    for (const fn of [...this.listeners]) fn();
  }
}

/**
 * The Web Locks API as far as the feed uses it: exclusive locks granted in
 * request order. Each tab gets its own handle (tab()); closing a tab
 * releases what it holds and drops its place in line, as a browser does
 * when a document goes away.
 */
export class FakeLockManager {
  /** @type {Map<string, {tab: object, grant: () => void, abort: () => void}[]>} */
  #queues = new Map();
  /** @type {Map<string, {tab: object, release: () => void}>} */
  held = new Map();

  tab() {
    const handle = {
      request: (/** @type {string} */ name, /** @type {{signal?: AbortSignal}} */ opts, /** @type {() => Promise<void>} */ cb) =>
        new Promise((resolve, reject) => {
          const entry = {
            tab: handle,
            grant: () => {
              let done = false;
              const release = () => {
                if (done) return;
                done = true;
                if (this.held.get(name)?.release === release) this.held.delete(name);
                resolve(undefined);
                this.#next(name);
              };
              this.held.set(name, { tab: handle, release });
              cb().then(release, release);
            },
            abort: () => reject(new DOMException('aborted', 'AbortError')),
          };
          opts.signal?.addEventListener('abort', () => {
            const q = this.#queues.get(name) ?? [];
            if (q.includes(entry)) {
              q.splice(q.indexOf(entry), 1);
              entry.abort();
            }
          }, { once: true });
          const q = this.#queues.get(name) ?? [];
          this.#queues.set(name, q);
          q.push(entry);
          if (!this.held.has(name)) this.#next(name);
        }),
    };
    return handle;
  }

  /** @param {string} name */
  #next(name) {
    if (this.held.has(name)) return;
    const entry = this.#queues.get(name)?.shift();
    entry?.grant();
  }

  /** The tab holding a lock (its handle), if any. @param {string} name */
  holder(name) {
    return this.held.get(name)?.tab ?? null;
  }

  /** The browser discards a tab: its locks go, its requests leave the line. @param {object} tab */
  closeTab(tab) {
    for (const [name, q] of this.#queues) this.#queues.set(name, q.filter((e) => e.tab !== tab));
    for (const [, h] of [...this.held]) if (h.tab === tab) h.release();
  }
}

/**
 * BroadcastChannel between fake tabs: a message reaches every other open
 * instance of the same name, asynchronously and as a structured clone.
 * tab() gives a tab its own constructor, so that closeTab() can silence
 * exactly that tab's instances (the browser discarding it).
 */
export function fakeBroadcastBus() {
  /** @type {Set<any>} */
  const open = new Set();
  const tab = () => {
    /** @type {Set<any>} */
    const mine = new Set();
    class FakeBroadcastChannel {
      static instances = mine;
      /** @type {((e: {data: any}) => void) | null} */ onmessage = null;
      /** @param {string} name */
      constructor(name) {
        this.name = name;
        open.add(this);
        mine.add(this);
      }
      /** @param {any} data */
      postMessage(data) {
        if (!open.has(this)) return;
        for (const other of open) {
          if (other === this || other.name !== this.name) continue;
          const copy = structuredClone(data);
          queueMicrotask(() => open.has(other) && other.onmessage?.({ data: copy }));
        }
      }
      close() {
        open.delete(this);
      }
    }
    return FakeBroadcastChannel;
  };
  /** @param {any} cls a constructor tab() returned */
  const closeTab = (cls) => {
    for (const bc of cls.instances) open.delete(bc);
  };
  return { tab, closeTab };
}

/**
 * Everything a test needs: fakes wired as deps, plus recorders for callbacks.
 * @param {{random?: () => number, EventSource?: any, locks?: any, BroadcastChannel?: any, clock?: FakeClock, server?: FakeServer}} [opts]
 */
export function makeEnv(opts = {}) {
  const clock = opts.clock ?? new FakeClock();
  const server = opts.server ?? new FakeServer();
  const ES = opts.EventSource === undefined ? fakeEventSource() : opts.EventSource;
  const doc = new FakeDocument();
  /** @type {any[]} */ const events = [];
  /** @type {any[]} */ const resets = [];
  /** @type {[string, string | null][]} */ const statuses = [];
  /** @type {any[]} */ const errors = [];
  const deps = {
    fetch: /** @type {any} */ (server.fetch),
    EventSource: ES,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    random: opts.random ?? (() => 0.5),
    now: () => clock.now,
    document: doc,
    // Sharing between tabs only where a test sets it up.
    locks: opts.locks ?? null,
    BroadcastChannel: opts.BroadcastChannel ?? null,
  };
  const callbacks = {
    onEvent: (/** @type {any} */ e) => events.push(e),
    onReset: (/** @type {any} */ r) => resets.push(r),
    onStatus: (/** @type {string} */ s, /** @type {string | null} */ t) => statuses.push([s, t]),
    onError: (/** @type {any} */ e) => errors.push(e),
    deps,
  };
  return { clock, server, ES, doc, deps, events, resets, statuses, errors, callbacks };
}

/**
 * A one-channel poll answer.
 * @param {string} channel
 * @param {number[]} versions
 * @param {{head?: number, oldest?: number, more?: boolean}} [o]
 */
export function page(channel, versions, o = {}) {
  const head = o.head ?? Math.max(0, ...versions);
  return {
    channel,
    head,
    oldest: o.oldest ?? 1,
    events: versions.map((v) => ev(channel, v)),
    more: o.more ?? false,
  };
}

/** @param {string} channel @param {number} version */
export function ev(channel, version) {
  return { channel, version, type: 'insert', data: { n: version }, time: '2026-11-22T05:30:33.123456Z' };
}
