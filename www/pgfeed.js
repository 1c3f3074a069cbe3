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
 * Everything that touches time or the network (timers, fetch, EventSource,
 * document visibility, randomness) is taken from `options.deps`, so tests run
 * the whole state machine on a fake clock. No dependencies, no build step.
 */

/** @typedef {'sse' | 'longpoll' | 'poll'} Transport */
/** @typedef {'auto' | Transport} TransportMode */
/** @typedef {'connecting' | 'live' | 'polling' | 'offline' | 'closed'} FeedStatus */

/**
 * @typedef {object} FeedEvent
 * @property {string} channel
 * @property {number} version
 * @property {string} type
 * @property {unknown} data
 * @property {string} time
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
 */

/**
 * @typedef {object} FeedOptions
 * @property {(event: FeedEvent) => void} [onEvent]
 * @property {(info: ResetInfo) => void} [onReset]
 * @property {(status: FeedStatus, transport: Transport | null) => void} [onStatus]
 * @property {(error: FeedError) => void} [onError]
 * @property {TransportMode} [transport]
 * @property {number | string | Record<string, number | 'now'>} [since]
 * @property {number} [limit]  events per poll answer (server default otherwise)
 * @property {number} [wait]  long-poll hold, seconds
 * @property {boolean} [withCredentials]  send cookies cross-origin
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
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

/**
 * Follows channels under base (the feed's mount point, e.g. '/feed').
 * @param {string} base
 * @param {string | string[]} channels
 * @param {FeedOptions} [options]
 * @returns {Feed}
 */
export function subscribe(base, channels, options = {}) {
  return new Feed(base, channels, options);
}

/**
 * The state of one connection attempt: everything it owns, so ending it
 * releases all of it at once. A callback that finds its run is no longer the
 * current one does nothing, which is how late fetch answers are ignored.
 * @typedef {object} Run
 * @property {Set<any>} timers
 * @property {AbortController} abort
 * @property {any} es  the EventSource, if this run opened one
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
  #onVisibility = () => this.#visibilityChanged();

  /**
   * @param {string} base
   * @param {string | string[]} channels
   * @param {FeedOptions} options
   */
  constructor(base, channels, options) {
    this.#base = String(base).replace(/\/+$/, '');
    this.#names = [...new Set(typeof channels === 'string' ? [channels] : channels)];
    if (this.#names.length === 0) throw new TypeError('pgfeed: no channel given');
    for (const name of this.#names) {
      if (!CHANNEL_NAME.test(name)) throw new TypeError(`pgfeed: invalid channel name ${JSON.stringify(name)}`);
    }
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
    this.#emit(this.#o.onError, error);
    const canStep = this.#mode === 'auto' && this.#rung < LADDER.length - 1;
    if (stalled && canStep) {
      this.#stepDown();
      this.#setStatus('connecting');
      return this.#connect();
    }
    const check = canStep && ['sse', 'longpoll', 'check'].includes(run.kind);
    const next = this.#begin(check ? 'check' : 'wait');
    this.#setStatus('offline');
    const delay = this.#backoff() + error.retryAfter * 1000;
    this.#later(delay, () => (check ? this.#check(next) : this.#connect()));
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
    this.#connect();
  }

  // ---- SSE ----

  /** @param {Run} run */
  #openSse(run) {
    let es;
    try {
      es = new this.#d.EventSource(this.#url({ since: this.#format() }), { withCredentials: this.#o.withCredentials });
    } catch (e) {
      return this.#fail(run, asFeedError(e));
    }
    run.es = es;
    let opened = false;
    const stall = this.#later(this.#o.stallMs, () =>
      this.#fail(run, new FeedError(`pgfeed: no first byte from the stream within ${this.#o.stallMs} ms`), true));
    es.onopen = () => {
      if (run !== this.#run || opened) return;
      opened = true;
      this.#cancel(stall);
      this.#failures = 0;
      // Backoff resets only once a stream has stayed up, so one that opens and
      // drops at once still backs off.
      this.#later(this.#o.stallMs, () => { this.#attempt = 0; });
      this.#setStatus('live');
      this.#watch(run);
    };
    es.onmessage = (/** @type {MessageEvent} */ e) => {
      if (run !== this.#run) return;
      const event = parseJson(e.data);
      if (event) this.#deliver(event);
      this.#watch(run);
    };
    es.addEventListener('reset', (/** @type {MessageEvent} */ e) => {
      if (run !== this.#run) return;
      const info = parseJson(e.data);
      if (info) this.#gone(info);
      this.#watch(run);
    });
    es.onerror = () => {
      if (run !== this.#run) return;
      if (!opened) return this.#fail(run, new FeedError('pgfeed: the event stream could not be opened'));
      // The stream ended (its lifetime, or the server went away). Reconnect
      // ourselves rather than let EventSource do it: ours carries since= and
      // jitter; status stays as it is unless the reconnect fails.
      this.#begin('wait');
      this.#later(this.#backoff(), () => this.#connect());
    };
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
    const held = long ? this.#later(this.#o.minHoldMs, () => this.#setStatus('live')) : null;
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
    this.#attempt = 0;
    this.#failures = 0;
    this.#setStatus(long ? 'live' : 'polling');
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
   * @returns {Promise<{status: number, body: any, etag: string | null, retryAfter: number}>}
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
      retryAfter: Number.parseInt(res.headers.get('Retry-After') ?? '', 10) || 0,
    };
  }

  /**
   * Applies a poll answer: how many events were new and whether to ask again
   * at once. Throws for an answer that is a failure.
   * @param {{status: number, body: any, etag: string | null, retryAfter: number}} res
   * @returns {{count: number, more: boolean}}
   */
  #take(res) {
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
    if (!fn) return;
    try {
      fn(...args);
    } catch (e) {
      const report = /** @type {any} */ (globalThis).reportError;
      if (report) report(e);
      else console.error(e);
    }
  }
}

// ---- helpers without state ----

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

/** @param {{status: number, body: any, retryAfter: number}} res */
function httpError(res) {
  const detail = res.body?.detail ?? res.body?.title ?? '';
  return new FeedError(`pgfeed: HTTP ${res.status}${detail ? `: ${detail}` : ''}`, res.status, res.retryAfter);
}

/** @param {unknown} e */
function asFeedError(e) {
  if (e instanceof FeedError) return e;
  return new FeedError(`pgfeed: ${e instanceof Error ? e.message : String(e)}`);
}
