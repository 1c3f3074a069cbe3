// @ts-check
/**
 * pgfeed.js — the browser client for pgfeed change feeds.
 *
 * One call, `subscribe(base, channels, options)`, follows one or more channels
 * and hands every event to `onEvent` exactly once, in version order per
 * channel, whatever happens to the connection. It climbs a transport ladder:
 *
 *   sse       EventSource, one held stream for all channels (preferred)
 *   longpoll  `wait=` requests, when SSE is refused or a proxy stalls it
 *   poll      ETag short polls at an adaptive interval, the last resort
 *
 * and periodically tries the top rung again. The client always knows its
 * cursor (the last version it delivered per channel) and passes it as `since=`
 * on every new request or stream, so a reconnect, a transport switch or a
 * server restart never loses or repeats an event. Reconnects wait with
 * exponential backoff and full jitter, so clients do not return in a herd.
 *
 * Tabs of one origin share one connection (see SharedFeed below): one tab,
 * elected with the Web Locks API, holds the transport for the union of every
 * tab's channels and forwards each event over a BroadcastChannel; each
 * subscription keeps its own cursor and drops what it already delivered, so
 * a new leader can resume from the lowest cursor without anyone seeing an
 * event twice.
 *
 * Tokens: `token` (a string, or a function returning a fresh one) goes out as
 * `Authorization: Bearer` on every request; with a token the event stream is
 * read with fetch, because EventSource cannot send headers. A 401 or an SSE
 * `event: auth` asks for a fresh token once and resumes from the cursor; a 403
 * drops the channel it names (onError) and the feed goes on with the rest.
 *
 * Everything that touches time or the network (timers, fetch, EventSource,
 * document visibility, randomness, locks, BroadcastChannel) is taken from
 * `options.deps`, so tests run the whole state machine on a fake clock. No
 * dependencies, no build step.
 */

/** @typedef {'sse' | 'longpoll' | 'poll'} Transport */
/** @typedef {'auto' | Transport} TransportMode */
/**
 * connecting: learning the cursor or opening a transport;
 * live: an event stream or long poll is up (events arrive as published);
 * polling: short polls succeed (events arrive within the poll interval);
 * degraded: pgfeed answers but cannot reach its database, so no event can
 *   arrive until it can (the feed resumes by itself);
 * offline: the last attempt failed, retrying with backoff;
 * closed: close() was called, or every channel was refused (403).
 * @typedef {'connecting' | 'live' | 'polling' | 'degraded' | 'offline' | 'closed'} FeedStatus
 */

/**
 * One change, as the server sends it. Versions are per channel, gapless, from 1.
 * @typedef {object} FeedEvent
 * @property {string} channel
 * @property {number} version
 * @property {string} type  e.g. 'insert', 'update', 'delete' from a tracked table, or the publisher's own
 * @property {any} data  the JSON published (tracked tables: {table, new} / {table, old, new} / {table, old})
 * @property {string} time  ISO 8601 publish time, e.g. "2026-11-22T05:30:33.123456Z"
 */

/**
 * @typedef {object} ResetInfo
 * @property {string} channel  the channel whose cursor was pruned away
 * @property {number | null} oldest  oldest version still retained
 * @property {number | null} head  where the feed resumes (events after it follow)
 * @property {'pruned' | 'reset'} reason  pruned: retention dropped the events;
 *   reset: the feed restarted below the cursor (e.g. a restored database)
 */

/**
 * @typedef {object} Deps
 * @property {typeof fetch} [fetch]
 * @property {any} [EventSource]  a constructor like the DOM's; null: none
 * @property {(fn: () => void, ms: number) => any} [setTimeout]
 * @property {(id: any) => void} [clearTimeout]
 * @property {() => number} [random]  in [0, 1)
 * @property {() => number} [now]  milliseconds
 * @property {{visibilityState: string, addEventListener: Function, removeEventListener: Function} | null} [document]
 * @property {LockManagerLike | null} [locks]  navigator.locks; null: no sharing between tabs
 * @property {any} [BroadcastChannel]  a constructor like the DOM's; null: no sharing between tabs
 */

/**
 * What the feed uses of the Web Locks API (navigator.locks).
 * @typedef {object} LockManagerLike
 * @property {(name: string, options: {signal?: AbortSignal}, callback: () => Promise<void>) => Promise<void>} request
 */

/**
 * @typedef {object} FeedOptions
 * @property {(event: FeedEvent) => void} [onEvent]  each event exactly once, in version order per channel
 * @property {(info: ResetInfo) => void} [onReset]  a channel's cursor was pruned away (410, or
 *   SSE `event: reset`): reload your snapshot; events after info.head follow
 * @property {(status: FeedStatus, transport: Transport | null) => void} [onStatus]  the status
 *   or the transport changed
 * @property {(error: FeedError) => void} [onError]  every failed request or stream, for
 *   logging; the feed recovers by itself, except from a 403 (error.channel is dropped)
 * @property {TransportMode} [transport]  default 'auto': sse → longpoll → poll and back
 * @property {number | string | Record<string, number | 'now'>} [since]  where to start:
 *   'now' (default: only events published from now on), a version (for every
 *   channel), a cursor string as `feed.cursor` returns it ("45" or
 *   "orders=45,user:42=9"), or { channel: version | 'now' }. Channels it does
 *   not name start at 'now'.
 * @property {number} [limit]  events per poll answer (server default otherwise)
 * @property {number} [wait]  long-poll hold, seconds (the server may cap it); default 25
 * @property {boolean} [withCredentials]  send cookies cross-origin (EventSource
 *   withCredentials, fetch credentials 'include')
 * @property {string | (() => string | Promise<string>)} [token]  sent as
 *   `Authorization: Bearer`; a function is asked again after a 401 or an SSE
 *   `event: auth`. With a token the event stream is read with fetch.
 * @property {boolean} [shared]  share one connection with the other tabs of
 *   this origin (default true where Web Locks and BroadcastChannel exist)
 * @property {number} [stallMs]  SSE must open within this, else it counts as stalled
 * @property {number} [probeMs]  a silent SSE stream is checked against the server after this
 * @property {number} [graceMs]  how long the stream may lag behind a probe
 * @property {number} [minIntervalMs]  short-poll interval after news
 * @property {number} [maxIntervalMs]  short-poll interval when quiet
 * @property {number} [backoffMs]  first reconnect delay cap
 * @property {number} [maxBackoffMs]  largest reconnect delay cap
 * @property {number} [maxFailures]  transport failures (server still up) before stepping down
 * @property {number} [climbMs]  how long to stay below SSE before trying it again
 * @property {number} [minHoldMs]  an empty long poll answered faster means the wait is not honoured
 * @property {Deps} [deps]
 */

/**
 * What subscribe() returns: a SharedFeed (the connection shared by the tabs
 * of the origin) unless `shared: false` or the browser lacks Web Locks or
 * BroadcastChannel, then a Feed of its own. Both have the same interface.
 * @typedef {Feed | SharedFeed} Subscription
 */

/**
 * A poll answer as the feed uses it.
 * @typedef {object} Answer
 * @property {number} status
 * @property {any} body  parsed JSON; null for a 304 or a body that is not JSON
 * @property {string | null} etag
 * @property {number} retryAfter  seconds
 * @property {boolean} databaseDown  `Pgfeed-Database: down`
 */

/**
 * What a shared connection's leader learns from the Feed it runs.
 * @typedef {object} FeedHooks
 * @property {(cursor: Map<string, number>) => void} [onResolved]  heads learned for since 'now'
 */

const LADDER = /** @type {const} */ (['sse', 'longpoll', 'poll']);
const CHANNEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;
/* A long poll not answered by wait + this is treated as lost (a proxy ate it). */
const HOLD_SLACK_MS = 10_000;

/**
 * @typedef {Required<Pick<FeedOptions, 'transport' | 'since' | 'wait' | 'withCredentials' | 'stallMs' |
 *   'probeMs' | 'graceMs' | 'minIntervalMs' | 'maxIntervalMs' | 'backoffMs' | 'maxBackoffMs' |
 *   'maxFailures' | 'climbMs' | 'minHoldMs'>>} Settings
 */

/** @type {Readonly<Settings>} */
export const DEFAULTS = Object.freeze({
  transport: 'auto',
  since: 'now',
  wait: 25,
  withCredentials: false,
  stallMs: 10_000,
  probeMs: 60_000,
  graceMs: 5_000,
  minIntervalMs: 2_000,
  maxIntervalMs: 30_000,
  backoffMs: 1_000,
  maxBackoffMs: 60_000,
  maxFailures: 3,
  climbMs: 300_000,
  minHoldMs: 1_000,
});

/** A failed request or stream; `status` is the HTTP status when there was one. */
export class FeedError extends Error {
  /**
   * @param {string} message
   * @param {number} [status]
   * @param {number} [retryAfter]  seconds, from a Retry-After header
   */
  constructor(message, status = 0, retryAfter = 0) {
    super(message);
    this.name = 'FeedError';
    /** The HTTP status, or 0 for a network error, timeout or stream failure. */
    this.status = status;
    /** Seconds from Retry-After (0 if none). */
    this.retryAfter = retryAfter;
    /** The channel a 403 refused (null: not about one channel). */
    /** @type {string | null} */
    this.channel = null;
    /** True when pgfeed said it cannot reach its database. */
    this.databaseDown = false;
  }
}

/**
 * Follows channels under base (the feed's mount point, e.g. '/feed').
 * @param {string} base
 * @param {string | string[]} channels
 * @param {FeedOptions} [options]
 * @returns {Subscription}
 */
export function subscribe(base, channels, options = {}) {
  const d = withDefaults(options.deps);
  if (options.shared !== false && d.locks && d.BroadcastChannel) return hubFor(base, d).attach(channels, options);
  return new Feed(base, channels, options);
}

/**
 * The state of one connection attempt: everything it owns, so ending it
 * releases all of it at once. A callback that finds its run is no longer the
 * current one does nothing, which is how late fetch answers are ignored.
 * @typedef {object} Run
 * @property {Set<any>} timers
 * @property {AbortController} abort
 * @property {{close: () => void} | null} es  the EventSource (or fetch reader), if this run opened one
 * @property {string} kind  'resolve' | 'check' | a transport
 * @property {any} next  short poll: the pending timer
 * @property {boolean} paused  short poll: waiting for the tab to be shown
 * @property {any} probe  SSE: timer of the silent-stream check
 * @property {any} grace  SSE: timer giving the stream time to catch up
 */

export class Feed {
  /** @type {string} */ #base;
  /** @type {string[]} */ #names;
  /** @type {Settings & FeedOptions} */ #o;
  /** @type {Required<Deps>} */ #d;
  /** Last delivered version per channel; null until learned from the server. */
  /** @type {Map<string, number | null>} */ #cursor = new Map();
  /** @type {TransportMode} */ #mode;
  #rung = 0;
  /** @type {FeedStatus} */ #status = 'connecting';
  /** @type {Transport | null} */ #transport = null;
  #failures = 0;
  #attempt = 0;
  #pollDelay = 0;
  /** @type {{link: string, since: string} | null} the last answer's canonical next URL (#get) */
  #next = null;
  /** @type {Run | null} */ #run = null;
  /** @type {any} */ #climbTimer = null;
  /** The bearer token in use; null: ask options.token (again). */
  /** @type {string | null} */ #token = null;
  /** A fresh token was already fetched for a 401 since the last success. */
  #refreshed = false;
  /** pgfeed said it cannot reach its database. */
  #degraded = false;
  /** @type {FeedHooks} */ #hooks;
  #onVisibility = () => this.#visibilityChanged();

  /**
   * @param {string} base
   * @param {string | string[]} channels
   * @param {FeedOptions} options
   * @param {FeedHooks} [hooks]  for SharedFeed's leader
   */
  constructor(base, channels, options, hooks = {}) {
    this.#hooks = hooks;
    this.#base = String(base).replace(/\/+$/, '');
    this.#names = channelList(channels);
    this.#o = { ...DEFAULTS, ...options };
    this.#d = withDefaults(options.deps);
    this.#pollDelay = this.#o.minIntervalMs;
    for (const [name, version] of parseSince(this.#o.since, this.#names)) this.#cursor.set(name, version);
    this.#mode = 'auto';
    this.#choose(this.#o.transport);
    this.#transport = LADDER[this.#rung];
    this.#d.document?.addEventListener('visibilitychange', this.#onVisibility);
    // Start once subscribe() has returned, so callbacks may already use the feed.
    queueMicrotask(() => {
      if (this.#status === 'closed') return;
      this.#emit(this.#o.onStatus, this.#status, this.#transport);
      this.#connect();
    });
  }

  /** Connection state for an indicator. */
  get status() { return this.#status; }
  /** The transport in use (or being tried); null once closed. */
  get transport() { return this.#transport; }
  /** 'auto' or the forced transport. */
  get mode() { return this.#mode; }
  /** The channels followed (a 403 removes the one it refused). */
  get channels() { return [...this.#names]; }
  /**
   * Where the feed stands, in the server's cursor syntax ("45", or
   * "orders=45,user:42=9"); pass it as `since` to pick up later. Null while a
   * channel's position is still being learned.
   */
  get cursor() { return this.#known() ? this.#format() : null; }

  /**
   * Switches to a transport ('auto' lets the feed choose and fall back). The
   * cursor carries over, so nothing is missed or repeated.
   * @param {TransportMode} mode
   */
  setTransport(mode) {
    if (this.#status === 'closed') return;
    this.#choose(mode);
    this.#connect();
  }

  /** @param {TransportMode} mode */
  #choose(mode) {
    if (mode !== 'auto' && !LADDER.includes(/** @type {Transport} */ (mode))) {
      throw new TypeError(`pgfeed: unknown transport ${JSON.stringify(mode)}`);
    }
    if (mode === 'sse' && !this.#d.EventSource) throw new TypeError('pgfeed: EventSource is not available');
    this.#mode = mode;
    this.#rung = mode === 'auto' ? this.#top() : LADDER.indexOf(mode);
    this.#failures = 0;
    this.#attempt = 0;
    this.#stopClimb();
  }

  /** Stops for good: closes the stream, aborts requests, clears every timer and listener. */
  close() {
    if (this.#status === 'closed') return;
    this.#end();
    this.#stopClimb();
    this.#d.document?.removeEventListener('visibilitychange', this.#onVisibility);
    this.#transport = null;
    this.#setStatus('closed');
  }

  // ---- runs: what one attempt owns ----

  /** @param {string} kind */
  #begin(kind) {
    this.#end();
    /** @type {Run} */
    const run = { timers: new Set(), abort: new AbortController(), es: null, kind, next: null, paused: false, probe: null, grace: null };
    this.#run = run;
    return run;
  }

  #end() {
    const run = this.#run;
    if (!run) return;
    this.#run = null;
    for (const id of run.timers) this.#d.clearTimeout(id);
    run.timers.clear();
    run.abort.abort();
    run.es?.close();
  }

  /**
   * A timer owned by the current run: cleared when the run ends, and inert if
   * it fires for a run that is no longer current.
   * @param {number} ms
   * @param {() => void} fn
   */
  #later(ms, fn) {
    const run = this.#run;
    if (!run) return null;
    const id = this.#d.setTimeout(() => {
      run.timers.delete(id);
      if (this.#run === run) fn();
    }, ms);
    run.timers.add(id);
    return id;
  }

  /** @param {any} id */
  #cancel(id) {
    if (id == null) return;
    this.#d.clearTimeout(id);
    this.#run?.timers.delete(id);
  }

  // ---- the ladder ----

  #top() { return this.#d.EventSource ? 0 : 1; }

  /** @returns {void} */
  #connect() {
    const transport = LADDER[this.#rung];
    this.#use(transport);
    if (!this.#known()) void this.#resolve(this.#begin('resolve'));
    else if (transport === 'sse') this.#openSse(this.#begin(transport));
    else void this.#request(this.#begin(transport));
  }

  /**
   * Every failure comes here. A stalled stream steps down at once. Otherwise
   * wait (full jitter) and, when falling back is allowed, first ask with a
   * plain poll whether the server is up: if it is, the failure belongs to the
   * transport and counts toward stepping down; if not, the feed is offline and
   * the transport is not to blame.
   * @param {Run} run
   * @param {FeedError} error
   * @param {boolean} [stalled]
   * @returns {void}
   */
  #fail(run, error, stalled = false) {
    if (run !== this.#run) return;
    if (error.status === 403) return this.#refuse(error);
    this.#emit(this.#o.onError, error);
    if (error.status === 401) {
      this.#token = null;
      // Once per success: a fresh token and straight back. A token that is
      // refused again waits out the backoff like any failure.
      if (!this.#refreshed && typeof this.#o.token === 'function') {
        this.#refreshed = true;
        this.#setStatus('connecting');
        return this.#connect();
      }
      this.#refreshed = false;
      this.#begin('wait');
      this.#setStatus('offline');
      this.#later(this.#backoff() + error.retryAfter * 1000, () => this.#connect());
      return;
    }
    const canStep = this.#mode === 'auto' && this.#rung < LADDER.length - 1;
    if (stalled && canStep) {
      this.#stepDown();
      this.#setStatus('connecting');
      return this.#connect();
    }
    const check = canStep && ['sse', 'longpoll', 'check'].includes(run.kind);
    const next = this.#begin(check ? 'check' : 'wait');
    this.#degraded = error.databaseDown;
    this.#setStatus(error.databaseDown ? 'degraded' : 'offline');
    const delay = this.#backoff() + error.retryAfter * 1000;
    this.#later(delay, () => (check ? this.#check(next) : this.#connect()));
  }

  /**
   * A 403: the channel it names (all of them when it names none) is dropped
   * for good and reported; the feed goes on with the others, or closes.
   * @param {FeedError} error
   */
  #refuse(error) {
    const named = error.channel !== null && this.#names.includes(error.channel) ? [error.channel] : null;
    const refused = named ?? (this.#names.length === 1 ? this.#names : [...this.#names]);
    for (const channel of refused) {
      const e = new FeedError(error.message, 403);
      e.channel = channel;
      this.#emit(this.#o.onError, e);
    }
    this.#names = this.#names.filter((n) => !refused.includes(n));
    for (const channel of refused) this.#cursor.delete(channel);
    if (this.#names.length === 0) return this.close();
    this.#setStatus('connecting');
    this.#connect();
  }

  /** Success of any request or stream: a later 401 may refresh again. */
  #ok() {
    this.#attempt = 0;
    this.#refreshed = false;
  }

  /** @returns {Promise<string | null>} the Authorization header, if a token is set */
  async #authorization() {
    const source = this.#o.token;
    if (source == null) return null;
    if (this.#token === null) {
      const token = typeof source === 'function' ? await source() : source;
      if (typeof token !== 'string' || token === '') throw new FeedError('pgfeed: the token function gave no token');
      this.#token = token;
    }
    return `Bearer ${this.#token}`;
  }

  /** Full jitter: uniform in [0, min(max, base * 2^attempt)). */
  #backoff() {
    const cap = Math.min(this.#o.maxBackoffMs, this.#o.backoffMs * 2 ** this.#attempt++);
    return Math.floor(this.#d.random() * cap);
  }

  /**
   * @param {Run} run
   * @returns {Promise<void>}
   */
  async #check(run) {
    try {
      const res = await this.#get(run, { since: this.#format() }, true);
      if (run !== this.#run) return;
      this.#take(res);
    } catch (e) {
      return this.#fail(run, asFeedError(e));
    }
    if (run !== this.#run) return;
    if (++this.#failures >= this.#o.maxFailures) this.#stepDown();
    this.#setStatus('connecting');
    this.#connect();
  }

  #stepDown() {
    this.#rung = Math.min(this.#rung + 1, LADDER.length - 1);
    this.#failures = 0;
    if (this.#climbTimer === null) {
      this.#climbTimer = this.#d.setTimeout(() => this.#climb(), this.#o.climbMs);
    }
  }

  #climb() {
    this.#climbTimer = null;
    if (this.#mode !== 'auto' || this.#rung === this.#top()) return;
    this.#rung = this.#top();
    this.#failures = 0;
    this.#setStatus('connecting');
    this.#connect();
  }

  #stopClimb() {
    if (this.#climbTimer !== null) this.#d.clearTimeout(this.#climbTimer);
    this.#climbTimer = null;
  }

  /**
   * Learns the head of every channel that started at 'now', so the client
   * holds a real cursor before any stream or poll (a stream started "at the
   * live edge" could otherwise lose events across a reconnect).
   * @param {Run} run
   * @returns {Promise<void>}
   */
  async #resolve(run) {
    try {
      const res = await this.#get(run, { since: 'now' }, false);
      if (run !== this.#run) return;
      if (res.status !== 200 || !res.body) throw httpError(res);
      for (const [name, head] of serverCursor(res.body, res.etag, this.#names)) {
        if (this.#cursor.get(name) === null) this.#cursor.set(name, head);
      }
      if (!this.#known()) throw new FeedError('pgfeed: the answer named no head for every channel');
    } catch (e) {
      return this.#fail(run, asFeedError(e));
    }
    this.#refreshed = false;
    this.#hooks.onResolved?.(new Map(/** @type {Map<string, number>} */ (this.#cursor)));
    this.#connect();
  }

  // ---- SSE ----

  /**
   * Opens the stream: EventSource where cookies (or nothing) authenticate,
   * fetch where a token must go in a header. Both end up in #sseOpened,
   * #sseFrame and #sseEnded.
   * @param {Run} run
   */
  #openSse(run) {
    const url = this.#url({ since: this.#format() });
    const state = { opened: false, stall: /** @type {any} */ (null) };
    state.stall = this.#later(this.#o.stallMs, () =>
      this.#fail(run, new FeedError(`pgfeed: no first byte from the stream within ${this.#o.stallMs} ms`), true));
    if (this.#o.token != null) return void this.#fetchSse(run, url, state);
    let es;
    try {
      es = new this.#d.EventSource(url, { withCredentials: this.#o.withCredentials });
    } catch (e) {
      return this.#fail(run, asFeedError(e));
    }
    run.es = es;
    es.onopen = () => this.#sseOpened(run, state);
    es.onmessage = (/** @type {MessageEvent} */ e) => this.#sseFrame(run, 'message', e.data);
    for (const type of ['reset', 'status', 'auth']) {
      es.addEventListener(type, (/** @type {MessageEvent} */ e) => this.#sseFrame(run, type, e.data));
    }
    es.onerror = () => this.#sseEnded(run, state, null);
  }

  /**
   * The stream read with fetch, so it can carry `Authorization`. Its status
   * is visible here (unlike EventSource's), so a 401 or 403 is handled as
   * for polls.
   * @param {Run} run
   * @param {string} url
   * @param {{opened: boolean, stall: any}} state
   */
  async #fetchSse(run, url, state) {
    /** @type {any} */
    let res;
    try {
      /** @type {Record<string, string>} */
      const headers = { Accept: 'text/event-stream' };
      const auth = await this.#authorization();
      if (auth) headers.Authorization = auth;
      if (run !== this.#run) return;
      res = await this.#d.fetch(url, {
        headers,
        signal: run.abort.signal,
        cache: 'no-store',
        credentials: this.#o.withCredentials ? 'include' : 'same-origin',
      });
    } catch (e) {
      return this.#sseEnded(run, state, asFeedError(e));
    }
    if (run !== this.#run) return;
    const type = res.headers.get('Content-Type') ?? '';
    if (res.status !== 200 || !res.body || !type.startsWith('text/event-stream')) {
      const body = await res.json().catch(() => null);
      return this.#fail(run, httpError({ status: res.status, body, retryAfter: retryAfter(res) }));
    }
    this.#sseOpened(run, state);
    try {
      await readEventStream(res.body, (t, data) => this.#sseFrame(run, t, data));
    } catch (e) {
      if (run !== this.#run) return;
    }
    this.#sseEnded(run, state, null);
  }

  /**
   * @param {Run} run
   * @param {{opened: boolean, stall: any}} state
   */
  #sseOpened(run, state) {
    if (run !== this.#run || state.opened) return;
    state.opened = true;
    this.#cancel(state.stall);
    this.#failures = 0;
    this.#refreshed = false;
    // Backoff resets only once a stream has stayed up, so one that opens and
    // drops at once still backs off.
    this.#later(this.#o.stallMs, () => { this.#attempt = 0; });
    this.#degraded = false;
    this.#setStatus('live');
    this.#watch(run);
  }

  /**
   * One frame: an event (no `event:` field), `reset`, `status` (the
   * database went down or came back) or `auth` (the token is about to run
   * out: the server ends the stream after it).
   * @param {Run} run
   * @param {string} type
   * @param {string} data
   */
  #sseFrame(run, type, data) {
    if (run !== this.#run) return;
    const body = parseJson(data);
    if (type === 'message' && body) this.#deliver(body);
    else if (type === 'reset' && body) this.#gone(body);
    else if (type === 'status' && body) {
      this.#degraded = body.database === 'down';
      this.#setStatus(this.#degraded ? 'degraded' : 'live');
    } else if (type === 'auth') {
      // Not a failure: fetch a fresh token and resume from the cursor at once.
      this.#token = null;
      this.#refreshed = false;
      this.#connect();
      return;
    }
    this.#watch(run);
  }

  /**
   * The stream ended (its lifetime, or the server went away) or never opened.
   * Reconnect ourselves rather than let EventSource do it: ours carries
   * since= and jitter; status stays as it is unless the reconnect fails.
   * @param {Run} run
   * @param {{opened: boolean}} state
   * @param {FeedError | null} error
   */
  #sseEnded(run, state, error) {
    if (run !== this.#run) return;
    if (!state.opened) return this.#fail(run, error ?? new FeedError('pgfeed: the event stream could not be opened'));
    this.#begin('wait');
    this.#later(this.#backoff(), () => this.#connect());
  }

  /**
   * EventSource hides the server's comment heartbeats, so a proxy that
   * passes the headers but buffers the body looks exactly like a quiet
   * channel. After probeMs of silence, ask the server (one conditional poll,
   * usually a 304) whether it has events the stream has not delivered; if the
   * stream is still behind graceMs later, it is stalled.
   * @param {Run} run
   */
  #watch(run) {
    if (this.#mode !== 'auto' || run.grace !== null) return;
    this.#cancel(run.probe);
    run.probe = this.#later(this.#o.probeMs, () => this.#probe(run));
  }

  /** @param {Run} run */
  async #probe(run) {
    run.probe = null;
    let target;
    try {
      const res = await this.#get(run, { since: this.#format(), limit: 1 }, true);
      target = res.status === 200 && res.body ? eventVersions(res.body, this.#names) : new Map();
    } catch {
      target = new Map();
    }
    if (run !== this.#run) return;
    if (target.size === 0) return this.#watch(run);
    run.grace = this.#later(this.#o.graceMs, () => {
      run.grace = null;
      const behind = [...target].some(([name, v]) => (this.#cursor.get(name) ?? 0) < v);
      if (behind) this.#fail(run, new FeedError('pgfeed: the event stream is buffered (events arrive late)'), true);
      else this.#watch(run);
    });
  }

  // ---- long poll and short poll ----

  /**
   * One long or short poll, then the next.
   * @param {Run} run
   * @returns {Promise<void>}
   */
  async #request(run) {
    const long = run.kind === 'longpoll';
    if (!long && this.#hidden()) {
      run.paused = true;
      return;
    }
    const started = this.#d.now();
    const timeout = long
      ? this.#later(this.#o.wait * 1000 + HOLD_SLACK_MS, () => this.#fail(run, new FeedError('pgfeed: long poll not answered in time')))
      : null;
    // A long poll the server is holding is as live as a stream: say so once it
    // has been held a moment, not after the first answer up to `wait` later.
    const held = long ? this.#later(this.#o.minHoldMs, () => this.#setStatus(this.#degraded ? 'degraded' : 'live')) : null;
    let page;
    try {
      const res = await this.#get(run, { since: this.#format(), wait: long ? this.#o.wait : undefined }, true);
      if (run !== this.#run) return;
      page = this.#take(res);
    } catch (e) {
      return this.#fail(run, asFeedError(e));
    }
    if (run !== this.#run) return; // an onEvent callback closed or switched the feed
    this.#cancel(timeout);
    this.#cancel(held);
    if (long && !page.more && page.count === 0 && this.#d.now() - started < this.#o.minHoldMs) {
      // Probably a proxy or config that ignores wait=: looping would hammer the server.
      return this.#fail(run, new FeedError('pgfeed: the server answered a long poll without holding it'));
    }
    this.#ok();
    this.#failures = 0;
    this.#setStatus(this.#degraded ? 'degraded' : long ? 'live' : 'polling');
    if (!this.#known()) return this.#connect();
    if (page.more || long) return this.#request(run);
    this.#pollDelay = page.count > 0 ? this.#o.minIntervalMs : Math.min(this.#o.maxIntervalMs, this.#pollDelay * 1.5);
    run.next = this.#later(this.#pollDelay, () => {
      run.next = null;
      this.#request(run);
    });
  }

  #visibilityChanged() {
    const run = this.#run;
    if (this.#hidden() || !run || run.kind !== 'poll' || !(run.paused || run.next)) return;
    this.#cancel(run.next);
    run.next = null;
    run.paused = false;
    this.#pollDelay = this.#o.minIntervalMs;
    this.#request(run);
  }

  #hidden() { return this.#d.document?.visibilityState === 'hidden'; }

  // ---- HTTP ----

  /**
   * @param {Run} run
   * @param {Record<string, string | number | undefined>} params
   * @param {boolean} conditional  send If-None-Match with the cursor
   * @returns {Promise<Answer>}
   */
  async #get(run, params, conditional) {
    /** @type {Record<string, string>} */
    const headers = { Accept: 'application/json' };
    let url = this.#url({ ...params, limit: params.limit ?? this.#o.limit });
    // A cacheable answer names the canonical URL to poll next (Link rel="next"):
    // follow it while our cursor is still the one that answer gave, so that
    // every client of a shared cache asks the same URL, and a cached empty
    // answer leads on (its link's round= moves) instead of back to itself.
    const next = this.#next;
    const follow = next !== null && next.since === this.#format() && params.limit === undefined &&
      /[?&]wait=/.test(next.link) === (params.wait !== undefined);
    if (follow) url = url.split('?')[0] + next.link;
    else if (conditional) headers['If-None-Match'] = `"${this.#format()}"`;
    // Without a token nothing is awaited: the request goes out in this turn.
    if (this.#o.token != null) headers.Authorization = /** @type {string} */ (await this.#authorization());
    const res = await this.#d.fetch(url, {
      headers,
      signal: run.abort.signal,
      cache: follow ? 'default' : 'no-store',
      credentials: this.#o.withCredentials ? 'include' : 'same-origin',
    });
    const link = /^<(\?[^>]*)>;\s*rel="next"$/.exec(res.headers.get('Link') ?? '');
    const etag = res.headers.get('ETag');
    this.#next = res.status === 200 && link && etag ? { link: link[1], since: etag.replace(/^"|"$/g, '') } : null;
    return {
      status: res.status,
      body: res.status === 304 ? null : await res.json().catch(() => null),
      etag: res.headers.get('ETag'),
      retryAfter: retryAfter(res),
      databaseDown: res.headers.get('Pgfeed-Database') === 'down',
    };
  }

  /**
   * Applies a poll answer: how many events were new and whether to ask again
   * at once. Throws for an answer that is a failure.
   * @param {Answer} res
   * @returns {{count: number, more: boolean}}
   */
  #take(res) {
    // A held poll that timed out while pgfeed could not reach its database
    // says so in a header (a 304 has no body) and in a 200's body.
    this.#degraded = res.databaseDown || res.body?.database === 'down';
    if (res.status === 304) return { count: 0, more: false };
    if (res.status === 410 && res.body) {
      this.#gone(res.body);
      return { count: 0, more: true };
    }
    if (res.status !== 200 || !res.body) throw httpError(res);
    const body = res.body;
    let count = 0;
    for (const event of body.events ?? []) {
      if (this.#status === 'closed') break;
      if (this.#deliver(event)) count++;
    }
    for (const [name, version] of serverCursor(body, res.etag, this.#names)) {
      const mine = this.#cursor.get(name);
      if (mine != null && version > mine) this.#cursor.set(name, version);
    }
    const more = body.more === true || Object.values(body.channels ?? {}).some((c) => c?.more === true);
    return { count, more };
  }

  /** @param {Record<string, string | number | undefined>} params */
  #url(params) {
    // Names, versions and 'now' use a URL-safe alphabet, so the query is
    // written as is and reads in logs exactly like the documentation.
    const query = this.#names.length > 1 ? this.#names.map((n) => `channel=${n}`) : [];
    for (const [key, value] of Object.entries(params)) {
      if (value !== undefined) query.push(`${key}=${value}`);
    }
    const path = this.#names.length > 1 ? `${this.#base}/` : `${this.#base}/${this.#names[0]}`;
    return `${path}?${query.join('&')}`;
  }

  // ---- cursor and delivery ----

  /**
   * Hands an event to the app unless it was already delivered.
   * @param {any} event
   * @returns {boolean} whether it was new
   */
  #deliver(event) {
    const channel = event?.channel ?? (this.#names.length === 1 ? this.#names[0] : undefined);
    const version = event?.version;
    if (!this.#cursor.has(channel) || !Number.isSafeInteger(version)) return false;
    const last = this.#cursor.get(channel);
    if (last != null && version <= last) return false;
    this.#cursor.set(channel, version);
    this.#emit(this.#o.onEvent, event.channel ? event : { ...event, channel });
    return true;
  }

  /**
   * The server no longer has the events after our cursor (410, or SSE's
   * `event: reset`): resume at its head and tell the app to reload. An answer
   * that does not say which channel resets all of them to "learn the head".
   * @param {any} info
   */
  #gone(info) {
    const named = info?.channel ?? (this.#names.length === 1 ? this.#names[0] : null);
    const head = named !== null && Number.isSafeInteger(info?.head) ? info.head : null;
    const oldest = named !== null && Number.isSafeInteger(info?.oldest) ? info.oldest : null;
    for (const channel of named !== null ? [named] : this.#names) {
      if (!this.#cursor.has(channel)) continue;
      const before = this.#cursor.get(channel) ?? 0;
      // 'reset': the server's head went back below our cursor (a restored or recreated feed).
      const reason = info?.reason ?? (head !== null && head < before ? 'reset' : 'pruned');
      this.#cursor.set(channel, head);
      this.#emit(this.#o.onReset, { channel, oldest, head, reason });
    }
  }

  #known() { return ![...this.#cursor.values()].includes(null); }

  #format() {
    if (this.#names.length === 1) return String(this.#cursor.get(this.#names[0]));
    return this.#names.map((n) => `${n}=${this.#cursor.get(n)}`).join(',');
  }

  // ---- status ----

  /** @param {FeedStatus} status */
  #setStatus(status) {
    if (status === this.#status) return;
    this.#status = status;
    this.#emit(this.#o.onStatus, status, this.#transport);
  }

  /** @param {Transport} transport */
  #use(transport) {
    if (transport === this.#transport) return;
    this.#transport = transport;
    this.#emit(this.#o.onStatus, this.#status, transport);
  }

  /**
   * Calls an app callback; an exception there is reported but never breaks
   * the feed's own state.
   * @param {Function | undefined} fn
   * @param {...any} args
   */
  #emit(fn, ...args) {
    emit(fn, ...args);
  }
}

// ---- one connection for every tab of an origin ----

/**
 * Hubs of this tab, by locks object and base URL (tests run several "tabs"
 * in one realm, each with its own locks).
 * @type {WeakMap<object, Map<string, Hub>>}
 */
const HUBS = new WeakMap();
/** A new leader waits this long for the other tabs to say what they follow. */
const GATHER_MS = 50;

/**
 * @param {string} base
 * @param {Required<Deps>} d
 */
function hubFor(base, d) {
  const g = /** @type {any} */ (globalThis);
  const key = new URL(String(base).replace(/\/+$/, '') || '/', g.location?.href ?? 'http://localhost/').href;
  let byBase = HUBS.get(/** @type {object} */ (d.locks));
  if (!byBase) HUBS.set(/** @type {object} */ (d.locks), (byBase = new Map()));
  let hub = byBase.get(key);
  if (!hub) byBase.set(key, (hub = new Hub(base, key, d, () => byBase?.delete(key))));
  return hub;
}

/**
 * What a SharedFeed lets its hub do: read its channels and cursors, hand it
 * what the leader broadcast.
 * @typedef {object} Port
 * @property {FeedOptions} options
 * @property {() => string[]} channels
 * @property {() => Map<string, number | null>} positions
 * @property {(event: any) => void} deliver
 * @property {(info: ResetInfo) => void} gone
 * @property {(cursor: Record<string, number>) => void} adopt
 * @property {(e: ErrorMessage) => void} error
 * @property {(status: FeedStatus, transport: Transport | null) => void} show
 */
/** @typedef {{message: string, status: number, retryAfter: number, channel: string | null}} ErrorMessage */

/**
 * Messages on the BroadcastChannel `pgfeed:<base URL>`:
 *   {t:'hello', tab, subs, need}  a tab's channels, and cursors it needs replayed from
 *   {t:'bye', tab}                a tab has no subscription left
 *   {t:'who'}                     a new leader asks every tab for a hello
 *   {t:'cursor', cursor}          the leader's position per channel (for since 'now')
 *   {t:'event', event} / {t:'reset', info} / {t:'error', error} / {t:'status', status, transport, mode}
 *   {t:'mode', mode}              a follower's setTransport, for the leader
 * @typedef {{t: string, [key: string]: any}} HubMessage
 */

/**
 * One tab's side of the shared connection for one base URL. Every tab asks
 * for the same Web Lock; the one holding it is the leader and runs a Feed for
 * the union of every tab's channels, starting each channel at the lowest
 * cursor any tab needs. Each SharedFeed drops what it already delivered, so
 * replaying from the lowest cursor is harmless and a new leader loses
 * nothing. The lock is released when the leader's tab closes (the browser
 * does it), is frozen (page lifecycle `freeze`), or closes its last feed.
 */
class Hub {
  #base;
  #key;
  #d;
  #forget;
  #tab = Math.random().toString(36).slice(2);
  /** What this tab's subscriptions let the hub do to them. */
  /** @type {Map<SharedFeed, Port>} */ #feeds = new Map();
  /** @type {any} */ #bc = null;
  /** @type {AbortController | null} */ #queued = null;
  /** @type {(() => void) | null} */ #release = null;
  // leader only:
  /** @type {Feed | null} */ #conn = null;
  /** @type {Map<string, Set<string>>} */ #tabs = new Map();
  /** Lowest cursor per channel some tab asked to be replayed from. */
  /** @type {Map<string, number>} */ #need = new Map();
  /** Last version broadcast per channel. */
  /** @type {Map<string, number>} */ #position = new Map();
  /** @type {Set<string>} */ #refused = new Set();
  /** @type {any} */ #restartTimer = null;
  /** @type {TransportMode | null} */ #mode = null;
  // every tab:
  /** @type {FeedStatus} */ status = 'connecting';
  /** @type {Transport | null} */ transport = null;
  /** @type {TransportMode} */ mode = 'auto';
  #onFreeze = () => this.#stepDown(true);
  #onResume = () => this.#queue();
  #onHide = () => this.#post({ t: 'bye', tab: this.#tab });

  /**
   * @param {string} base
   * @param {string} key  the absolute base URL
   * @param {Required<Deps>} d
   * @param {() => void} forget
   */
  constructor(base, key, d, forget) {
    this.#base = base;
    this.#key = key;
    this.#d = d;
    this.#forget = forget;
  }

  /**
   * @param {string | string[]} channels
   * @param {FeedOptions} options
   */
  attach(channels, options) {
    /** @type {Port | null} */
    let port = null;
    const feed = new SharedFeed(this, channels, options, (p) => { port = p; });
    this.#feeds.set(feed, /** @type {Port} */ (/** @type {unknown} */ (port)));
    if (this.#feeds.size === 1) this.#open();
    this.#announce([/** @type {Port} */ (/** @type {unknown} */ (port))]);
    return feed;
  }

  /** @param {SharedFeed} feed */
  detach(feed) {
    if (!this.#feeds.delete(feed)) return;
    if (this.#feeds.size > 0) return this.#announce([]);
    this.#post({ t: 'bye', tab: this.#tab });
    this.#stepDown(false);
    this.#bc.close();
    this.#bc = null;
    this.#d.document?.removeEventListener('freeze', this.#onFreeze);
    this.#d.document?.removeEventListener('resume', this.#onResume);
    /** @type {any} */ (globalThis).removeEventListener?.('pagehide', this.#onHide);
    this.#forget();
  }

  /** @param {TransportMode} mode */
  setTransport(mode) {
    if (this.#release) this.#useMode(mode);
    else this.#post({ t: 'mode', mode });
  }

  #open() {
    this.#bc = new this.#d.BroadcastChannel(`pgfeed:${this.#key}`);
    this.#bc.onmessage = (/** @type {MessageEvent} */ e) => this.#receive(e.data);
    this.#d.document?.addEventListener('freeze', this.#onFreeze);
    this.#d.document?.addEventListener('resume', this.#onResume);
    /** @type {any} */ (globalThis).addEventListener?.('pagehide', this.#onHide);
    this.#queue();
  }

  /** Waits in line for the lock; holding it is being the leader. */
  #queue() {
    if (this.#queued || this.#release || this.#feeds.size === 0) return;
    const queued = new AbortController();
    this.#queued = queued;
    /** @type {LockManagerLike} */ (this.#d.locks)
      .request(`pgfeed:${this.#key}`, { signal: queued.signal }, () => new Promise((resolve) => {
        if (this.#queued !== queued) return resolve(undefined);
        this.#queued = null;
        this.#release = () => resolve(undefined);
        this.#lead();
      }))
      .catch(() => {}); // aborted while waiting
  }

  /**
   * Gives the lock up: when this tab closes its last feed, or is frozen
   * (then it queues again on resume, behind the tabs already waiting).
   * @param {boolean} frozen
   */
  #stepDown(frozen) {
    this.#queued?.abort();
    this.#queued = null;
    if (!this.#release) return;
    const release = this.#release;
    this.#release = null;
    this.#conn?.close();
    this.#conn = null;
    this.#d.clearTimeout(this.#restartTimer);
    this.#restartTimer = null;
    release();
    if (frozen) this.#setStatus('connecting', null);
  }

  #lead() {
    this.#tabs.clear();
    this.#need.clear();
    this.#position.clear();
    this.#refused.clear();
    this.#setStatus('connecting', this.transport);
    this.#post({ t: 'who' });
    this.#announce(this.#feeds.values());
  }

  /**
   * Says which channels this tab follows, and which cursors of `fresh` feeds
   * must be replayed from (all of them after a 'who').
   * @param {Iterable<Port>} fresh
   */
  #announce(fresh) {
    /** @type {Record<string, number>} */
    const need = {};
    for (const feed of fresh) {
      for (const [channel, v] of feed.positions()) if (v !== null && !((need[channel] ?? Infinity) <= v)) need[channel] = v;
    }
    const subs = [...new Set([...this.#feeds.values()].flatMap((f) => f.channels()))];
    const hello = { t: 'hello', tab: this.#tab, subs, need };
    if (this.#release) this.#hello(hello);
    else this.#post(hello);
  }

  /** @param {HubMessage} m */
  #receive(m) {
    if (!m || typeof m.t !== 'string') return;
    if (this.#release) {
      if (m.t === 'hello') this.#hello(m);
      else if (m.t === 'bye') {
        this.#tabs.delete(m.tab);
        this.#schedule();
      } else if (m.t === 'mode') this.#useMode(m.mode);
      return;
    }
    if (m.t === 'who') {
      this.#setStatus('connecting', this.transport);
      this.#announce(this.#feeds.values());
    } else this.#dispatch(m);
  }

  /** What the leader sends: to the other tabs, and to its own feeds. @param {HubMessage} m */
  #broadcast(m) {
    this.#post(m);
    this.#dispatch(m);
  }

  /** @param {HubMessage} m */
  #post(m) {
    this.#bc?.postMessage(m);
  }

  /** @param {HubMessage} m */
  #dispatch(m) {
    if (m.t === 'status') {
      this.mode = m.mode;
      return this.#setStatus(m.status, m.transport);
    }
    for (const feed of [...this.#feeds.values()]) {
      if (m.t === 'event') feed.deliver(m.event);
      else if (m.t === 'reset') feed.gone(m.info);
      else if (m.t === 'cursor') feed.adopt(m.cursor);
      else if (m.t === 'error') feed.error(m.error);
    }
  }

  /**
   * @param {FeedStatus} status
   * @param {Transport | null} transport
   */
  #setStatus(status, transport) {
    this.status = status;
    this.transport = transport;
    for (const feed of [...this.#feeds.values()]) feed.show(status, transport);
  }

  // ---- the leader ----

  /** @param {HubMessage} m */
  #hello(m) {
    this.#tabs.set(m.tab, new Set(m.subs));
    for (const [channel, v] of Object.entries(m.need ?? {})) {
      if (Number.isSafeInteger(v) && !((this.#need.get(channel) ?? Infinity) <= v)) this.#need.set(channel, v);
    }
    // A tab starting at 'now' on a channel already followed starts here.
    const known = Object.fromEntries([...this.#position].filter(([c]) => m.subs.includes(c)));
    if (Object.keys(known).length) this.#broadcast({ t: 'cursor', cursor: known });
    // A tab that just arrived learns where the connection stands.
    this.#post({ t: 'status', status: this.status, transport: this.transport, mode: this.mode });
    this.#schedule();
  }

  /** @param {TransportMode} mode */
  #useMode(mode) {
    this.#mode = mode;
    this.#restart();
  }

  /** Restarts soon if the channels changed or a tab needs an older cursor. */
  #schedule() {
    if (this.#restartTimer !== null) return;
    this.#restartTimer = this.#d.setTimeout(() => {
      this.#restartTimer = null;
      if (this.#release && this.#stale()) this.#restart();
    }, GATHER_MS);
  }

  #wanted() {
    const union = new Set([...this.#tabs.values()].flatMap((s) => [...s]));
    return [...union].filter((c) => !this.#refused.has(c)).sort();
  }

  #stale() {
    const wanted = this.#wanted();
    const now = this.#conn?.channels ?? [];
    if (this.#conn === null || wanted.join('\n') !== [...now].sort().join('\n')) return true;
    return [...this.#need].some(([c, v]) => !((this.#position.get(c) ?? Infinity) <= v));
  }

  /** (Re)opens the leader's connection at the lowest cursor each channel needs. */
  #restart() {
    this.#conn?.close();
    this.#conn = null;
    const channels = this.#wanted();
    if (channels.length === 0) return this.#setStatus('connecting', null);
    /** @type {Record<string, number | 'now'>} */
    const since = {};
    for (const c of channels) {
      const candidates = [this.#position.get(c), this.#need.get(c)].filter((v) => v !== undefined);
      since[c] = candidates.length ? Math.min(.../** @type {number[]} */ (candidates)) : 'now';
      if (since[c] !== 'now') this.#position.set(c, /** @type {number} */ (since[c]));
    }
    this.#need.clear();
    // Tabs that start at 'now' start where the connection does.
    if (this.#position.size) this.#broadcast({ t: 'cursor', cursor: Object.fromEntries(this.#position) });
    const options = [...this.#feeds.values()][0].options;
    /** @type {Feed} */
    const conn = new Feed(this.#base, channels, {
      ...options,
      transport: this.#mode ?? options.transport ?? 'auto',
      since,
      onEvent: (event) => {
        if (conn !== this.#conn) return;
        this.#position.set(event.channel, event.version);
        this.#broadcast({ t: 'event', event });
      },
      onReset: (info) => {
        if (conn !== this.#conn) return;
        if (info.head !== null) this.#position.set(info.channel, info.head);
        else this.#position.delete(info.channel);
        this.#broadcast({ t: 'reset', info });
      },
      onStatus: (status, transport) => {
        if (conn !== this.#conn || status === 'closed') return;
        this.#broadcast({ t: 'status', status, transport, mode: conn.mode });
      },
      onError: (error) => {
        if (conn !== this.#conn) return;
        if (error.status === 403 && error.channel) this.#refused.add(error.channel);
        this.#broadcast({ t: 'error', error: { message: error.message, status: error.status, retryAfter: error.retryAfter, channel: error.channel } });
      },
    }, {
      onResolved: (cursor) => {
        if (conn !== this.#conn) return;
        for (const [c, v] of cursor) if (!this.#position.has(c)) this.#position.set(c, v);
        this.#broadcast({ t: 'cursor', cursor: Object.fromEntries(this.#position) });
      },
    });
    this.#conn = conn;
  }
}

/**
 * A subscription whose connection is shared with the other tabs of the
 * origin (see Hub). It has the Feed's interface; its own cursor decides what
 * it delivers, so every event reaches it once, in order, whichever tab holds
 * the connection. The connection's options (transport, token, wait, ...)
 * are those of the leader tab's first subscription.
 */
export class SharedFeed {
  /** @type {Hub} */ #hub;
  /** @type {FeedOptions} */ #o;
  /** @type {string[]} */ #names;
  /** @type {Map<string, number | null>} */ #cursor = new Map();
  /** @type {FeedStatus} */ #status = 'connecting';
  /** @type {Transport | null} */ #transport = null;

  /**
   * Use subscribe().
   * @param {Hub} hub
   * @param {string | string[]} channels
   * @param {FeedOptions} options
   * @param {(port: Port) => void} connect  receives what the hub may call
   */
  constructor(hub, channels, options, connect) {
    this.#hub = hub;
    this.#o = options;
    this.#names = channelList(channels);
    for (const [name, version] of parseSince(options.since ?? DEFAULTS.since, this.#names)) this.#cursor.set(name, version);
    if (options.transport !== undefined && options.transport !== 'auto' && !LADDER.includes(/** @type {Transport} */ (options.transport))) {
      throw new TypeError(`pgfeed: unknown transport ${JSON.stringify(options.transport)}`);
    }
    this.#status = hub.status;
    this.#transport = hub.transport;
    connect({
      options,
      channels: () => this.#names,
      positions: () => this.#cursor,
      deliver: (event) => this.#deliver(event),
      gone: (info) => this.#gone(info),
      adopt: (cursor) => this.#adopt(cursor),
      error: (e) => this.#error(e),
      show: (status, transport) => this.#show(status, transport),
    });
    queueMicrotask(() => {
      if (this.#status !== 'closed') emit(options.onStatus, this.#status, this.#transport);
    });
  }

  /** Connection state for an indicator. */
  get status() { return this.#status; }
  /** The transport the shared connection uses; null once closed. */
  get transport() { return this.#transport; }
  /** 'auto' or the forced transport of the shared connection. */
  get mode() { return this.#hub.mode; }
  /** The channels followed (a 403 removes the one it refused). */
  get channels() { return [...this.#names]; }
  /** Where this subscription stands ("45", "orders=45,user:42=9"); null while a channel's position is unknown. */
  get cursor() {
    if ([...this.#cursor.values()].includes(null)) return null;
    if (this.#names.length === 1) return String(this.#cursor.get(this.#names[0]));
    return this.#names.map((n) => `${n}=${this.#cursor.get(n)}`).join(',');
  }

  /**
   * Switches the shared connection's transport, for every tab.
   * @param {TransportMode} mode
   */
  setTransport(mode) {
    if (this.#status === 'closed') return;
    if (mode !== 'auto' && !LADDER.includes(/** @type {Transport} */ (mode))) throw new TypeError(`pgfeed: unknown transport ${JSON.stringify(mode)}`);
    this.#hub.setTransport(mode);
  }

  /** Stops this subscription; the connection goes on while other subscriptions need it. */
  close() {
    if (this.#status === 'closed') return;
    this.#status = 'closed';
    this.#transport = null;
    this.#hub.detach(this);
    emit(this.#o.onStatus, 'closed', null);
  }

  /** @param {any} event */
  #deliver(event) {
    const last = this.#cursor.get(event?.channel);
    if (last === undefined || last === null || !Number.isSafeInteger(event.version) || event.version <= last) return;
    this.#cursor.set(event.channel, event.version);
    emit(this.#o.onEvent, event);
  }

  /** @param {ResetInfo} info */
  #gone(info) {
    if (!this.#cursor.has(info.channel) || this.#cursor.get(info.channel) === null) return;
    this.#cursor.set(info.channel, info.head);
    emit(this.#o.onReset, info);
  }

  /** @param {Record<string, number>} cursor */
  #adopt(cursor) {
    for (const [channel, v] of Object.entries(cursor)) {
      if (this.#cursor.get(channel) === null) this.#cursor.set(channel, v);
    }
  }

  /** @param {ErrorMessage} e */
  #error(e) {
    if (e.channel !== null && !this.#cursor.has(e.channel)) return;
    const error = new FeedError(e.message, e.status, e.retryAfter);
    error.channel = e.channel;
    emit(this.#o.onError, error);
    if (e.status !== 403 || e.channel === null) return;
    this.#names = this.#names.filter((n) => n !== e.channel);
    this.#cursor.delete(e.channel);
    if (this.#names.length === 0) this.close();
  }

  /** @param {FeedStatus} status @param {Transport | null} transport */
  #show(status, transport) {
    if (this.#status === 'closed' || (status === this.#status && transport === this.#transport)) return;
    this.#status = status;
    this.#transport = transport;
    emit(this.#o.onStatus, status, transport);
  }
}

// ---- helpers without state ----

/**
 * Calls an app callback; an exception there is reported but never breaks
 * the feed's own state.
 * @param {Function | undefined} fn
 * @param {...any} args
 */
function emit(fn, ...args) {
  if (!fn) return;
  try {
    fn(...args);
  } catch (e) {
    const report = /** @type {any} */ (globalThis).reportError;
    if (report) report(e);
    else console.error(e);
  }
}

/**
 * The channels option as a list without repeats; throws for a bad name.
 * @param {string | string[]} channels
 */
function channelList(channels) {
  const names = [...new Set(typeof channels === 'string' ? [channels] : channels)];
  if (names.length === 0) throw new TypeError('pgfeed: no channel given');
  for (const name of names) {
    if (!CHANNEL_NAME.test(name)) throw new TypeError(`pgfeed: invalid channel name ${JSON.stringify(name)}`);
  }
  return names;
}

/**
 * Defaults call through globalThis at call time: browsers reject a bare
 * `fetch` or `setTimeout` invoked with another `this`.
 * @param {Deps} [deps]
 * @returns {Required<Deps>}
 */
function withDefaults(deps = {}) {
  const g = /** @type {any} */ (globalThis);
  return {
    fetch: deps.fetch ?? ((input, init) => g.fetch(input, init)),
    EventSource: deps.EventSource !== undefined ? deps.EventSource : g.EventSource ?? null,
    setTimeout: deps.setTimeout ?? ((fn, ms) => g.setTimeout(fn, ms)),
    clearTimeout: deps.clearTimeout ?? ((id) => g.clearTimeout(id)),
    random: deps.random ?? Math.random,
    now: deps.now ?? (() => Date.now()),
    document: deps.document !== undefined ? deps.document : g.document ?? null,
    locks: deps.locks !== undefined ? deps.locks : g.navigator?.locks ?? null,
    BroadcastChannel: deps.BroadcastChannel !== undefined ? deps.BroadcastChannel : g.BroadcastChannel ?? null,
  };
}

/**
 * The `since` option as a starting version per channel (null: 'now').
 * Channels it does not name start at 'now'.
 * @param {FeedOptions['since']} since
 * @param {string[]} names
 * @returns {Map<string, number | null>}
 */
function parseSince(since, names) {
  /** @type {Map<string, number | null>} */
  const out = new Map(names.map((n) => [n, null]));
  /** @param {unknown} v */
  const version = (v) => {
    if (v === 'now') return null;
    const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
    if (!Number.isSafeInteger(n) || /** @type {number} */ (n) < 0) throw new TypeError(`pgfeed: invalid since ${JSON.stringify(since)}`);
    return /** @type {number} */ (n);
  };
  if (since === undefined || since === null) return out;
  if (typeof since === 'object') {
    for (const [name, v] of Object.entries(since)) if (out.has(name)) out.set(name, version(v));
  } else if (typeof since === 'string' && since.includes('=')) {
    for (const pair of since.split(',')) {
      const [name, v] = pair.split('=');
      if (out.has(name)) out.set(name, version(v));
    }
  } else {
    const v = version(since);
    for (const name of names) out.set(name, v);
  }
  return out;
}

/**
 * The cursor the server says to send next: the body's `cursor` (several
 * channels), else the ETag, else a one-channel body's `head` when it carried
 * no events (the answer to since=now).
 * @param {any} body
 * @param {string | null} etag
 * @param {string[]} names
 * @returns {Map<string, number>}
 */
function serverCursor(body, etag, names) {
  const text = typeof body?.cursor === 'string' ? body.cursor : unquote(etag);
  /** @type {Map<string, number>} */
  const out = new Map();
  if (text && text.includes('=')) {
    for (const pair of text.split(',')) {
      const [name, v] = pair.split('=');
      if (/^\d+$/.test(v ?? '')) out.set(name, Number(v));
    }
  } else if (text && /^\d+$/.test(text)) {
    for (const name of names) out.set(name, Number(text));
  }
  if (out.size === 0 && names.length === 1 && Number.isSafeInteger(body?.head) && !(body.events ?? []).length) {
    out.set(names[0], body.head);
  }
  for (const [name, c] of Object.entries(body?.channels ?? {})) {
    if (!out.has(name) && Number.isSafeInteger(c?.head) && !(body.events ?? []).length) out.set(name, c.head);
  }
  return out;
}

/**
 * Highest version per channel among a poll answer's events.
 * @param {any} body
 * @param {string[]} names
 */
function eventVersions(body, names) {
  /** @type {Map<string, number>} */
  const out = new Map();
  for (const e of body.events ?? []) {
    const name = e?.channel ?? (names.length === 1 ? names[0] : undefined);
    if (name !== undefined && Number.isSafeInteger(e?.version)) out.set(name, Math.max(out.get(name) ?? 0, e.version));
  }
  return out;
}

/** @param {string | null} etag */
function unquote(etag) {
  const m = /^(?:W\/)?"([^"]*)"$/.exec(etag?.trim() ?? '');
  return m ? m[1] : null;
}

/** @param {string} text */
function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * A failed answer as a FeedError: a 403's problem body names the channel
 * refused, a 503's says whether the database is what is missing.
 * @param {{status: number, body: any, retryAfter: number}} res
 */
function httpError(res) {
  const detail = res.body?.detail ?? res.body?.title ?? '';
  const error = new FeedError(`pgfeed: HTTP ${res.status}${detail ? `: ${detail}` : ''}`, res.status, res.retryAfter);
  if (typeof res.body?.channel === 'string') error.channel = res.body.channel;
  error.databaseDown = res.status === 503 && res.body?.database === 'down';
  return error;
}

/** @param {{headers: {get: (name: string) => string | null}}} res */
function retryAfter(res) {
  return Number.parseInt(res.headers.get('Retry-After') ?? '', 10) || 0;
}

/**
 * Reads a text/event-stream body and calls onFrame(type, data) per event,
 * type 'message' when the frame has no `event:` field. Comments and `id:`
 * are not needed: the feed's own cursor is what it resumes from.
 * @param {ReadableStream<Uint8Array>} body
 * @param {(type: string, data: string) => void} onFrame
 */
async function readEventStream(body, onFrame) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let type = '';
  /** @type {string[]} */
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(buffer[nl] === '\r' && buffer[nl + 1] === '\n' ? nl + 2 : nl + 1);
      if (line === '') {
        if (data.length) onFrame(type || 'message', data.join('\n'));
        type = '';
        data = [];
        continue;
      }
      const colon = line.indexOf(':');
      if (colon === 0) continue; // a comment: the heartbeat
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + (line[colon + 1] === ' ' ? 2 : 1));
      if (field === 'event') type = value;
      else if (field === 'data') data.push(value);
    }
  }
}

/** @param {unknown} e */
function asFeedError(e) {
  if (e instanceof FeedError) return e;
  return new FeedError(`pgfeed: ${e instanceof Error ? e.message : String(e)}`);
}
