/**
 * Follows channels under base (the feed's mount point, e.g. '/feed').
 * @param {string} base
 * @param {string | string[]} channels
 * @param {FeedOptions} [options]
 * @returns {Subscription}
 */
export function subscribe(base: string, channels: string | string[], options?: FeedOptions): Subscription;
/**
 * @typedef {Required<Pick<FeedOptions, 'transport' | 'since' | 'wait' | 'withCredentials' | 'stallMs' |
 *   'probeMs' | 'graceMs' | 'minIntervalMs' | 'maxIntervalMs' | 'backoffMs' | 'maxBackoffMs' |
 *   'maxFailures' | 'climbMs' | 'minHoldMs'>>} Settings
 */
/** @type {Readonly<Settings>} */
export const DEFAULTS: Readonly<Settings>;
/** A failed request or stream; `status` is the HTTP status when there was one. */
export class FeedError extends Error {
    /**
     * @param {string} message
     * @param {number} [status]
     * @param {number} [retryAfter]  seconds, from a Retry-After header
     */
    constructor(message: string, status?: number, retryAfter?: number);
    /** The HTTP status, or 0 for a network error, timeout or stream failure. */
    status: number;
    /** Seconds from Retry-After (0 if none). */
    retryAfter: number;
    /** The channel a 403 refused (null: not about one channel). */
    /** @type {string | null} */
    channel: string | null;
    /** True when pgfeed said it cannot reach its database. */
    databaseDown: boolean;
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
    /**
     * @param {string} base
     * @param {string | string[]} channels
     * @param {FeedOptions} options
     * @param {FeedHooks} [hooks]  for SharedFeed's leader
     */
    constructor(base: string, channels: string | string[], options: FeedOptions, hooks?: FeedHooks);
    /** Connection state for an indicator. */
    get status(): FeedStatus;
    /** The transport in use (or being tried); null once closed. */
    get transport(): Transport | null;
    /** 'auto' or the forced transport. */
    get mode(): TransportMode;
    /** The channels followed (a 403 removes the one it refused). */
    get channels(): string[];
    /**
     * Where the feed stands, in the server's cursor syntax ("45", or
     * "orders=45,user:42=9"); pass it as `since` to pick up later. Null while a
     * channel's position is still being learned.
     */
    get cursor(): string | null;
    /**
     * Switches to a transport ('auto' lets the feed choose and fall back). The
     * cursor carries over, so nothing is missed or repeated.
     * @param {TransportMode} mode
     */
    setTransport(mode: TransportMode): void;
    /** Stops for good: closes the stream, aborts requests, clears every timer and listener. */
    close(): void;
    #private;
}
/**
 * A subscription whose connection is shared with the other tabs of the
 * origin (see Hub). It has the Feed's interface; its own cursor decides what
 * it delivers, so every event reaches it once, in order, whichever tab holds
 * the connection. The connection's options (transport, token, wait, ...)
 * are those of the leader tab's first subscription.
 */
export class SharedFeed {
    /**
     * Use subscribe().
     * @param {Hub} hub
     * @param {string | string[]} channels
     * @param {FeedOptions} options
     * @param {(port: Port) => void} connect  receives what the hub may call
     */
    constructor(hub: Hub, channels: string | string[], options: FeedOptions, connect: (port: Port) => void);
    /** Connection state for an indicator. */
    get status(): FeedStatus;
    /** The transport the shared connection uses; null once closed. */
    get transport(): Transport | null;
    /** 'auto' or the forced transport of the shared connection. */
    get mode(): TransportMode;
    /** The channels followed (a 403 removes the one it refused). */
    get channels(): string[];
    /** Where this subscription stands ("45", "orders=45,user:42=9"); null while a channel's position is unknown. */
    get cursor(): string | null;
    /**
     * Switches the shared connection's transport, for every tab.
     * @param {TransportMode} mode
     */
    setTransport(mode: TransportMode): void;
    /** Stops this subscription; the connection goes on while other subscriptions need it. */
    close(): void;
    #private;
}
export type Transport = "sse" | "longpoll" | "poll";
export type TransportMode = "auto" | Transport;
/**
 * connecting: learning the cursor or opening a transport;
 * live: an event stream or long poll is up (events arrive as published);
 * polling: short polls succeed (events arrive within the poll interval);
 * degraded: pgfeed answers but cannot reach its database, so no event can
 *   arrive until it can (the feed resumes by itself);
 * offline: the last attempt failed, retrying with backoff;
 * closed: close() was called, or every channel was refused (403).
 */
export type FeedStatus = "connecting" | "live" | "polling" | "degraded" | "offline" | "closed";
/**
 * One change, as the server sends it. Versions are per channel, gapless, from 1.
 */
export type FeedEvent = {
    channel: string;
    version: number;
    /**
     * e.g. 'insert', 'update', 'delete' from a tracked table, or the publisher's own
     */
    type: string;
    /**
     * the JSON published (tracked tables: {table, new} / {table, old, new} / {table, old})
     */
    data: any;
    /**
     * ISO 8601 publish time, e.g. "2026-11-22T05:30:33.123456Z"
     */
    time: string;
};
export type ResetInfo = {
    /**
     * the channel whose cursor was pruned away
     */
    channel: string;
    /**
     * oldest version still retained
     */
    oldest: number | null;
    /**
     * where the feed resumes (events after it follow)
     */
    head: number | null;
    /**
     * pruned: retention dropped the events;
     * reset: the feed restarted below the cursor (e.g. a restored database)
     */
    reason: "pruned" | "reset";
};
export type Deps = {
    fetch?: typeof fetch | undefined;
    /**
     * a constructor like the DOM's; null: none
     */
    EventSource?: any;
    setTimeout?: ((fn: () => void, ms: number) => any) | undefined;
    clearTimeout?: ((id: any) => void) | undefined;
    /**
     * in [0, 1)
     */
    random?: (() => number) | undefined;
    /**
     * milliseconds
     */
    now?: (() => number) | undefined;
    document?: {
        visibilityState: string;
        addEventListener: Function;
        removeEventListener: Function;
    } | null | undefined;
    /**
     * navigator.locks; null: no sharing between tabs
     */
    locks?: LockManagerLike | null | undefined;
    /**
     * a constructor like the DOM's; null: no sharing between tabs
     */
    BroadcastChannel?: any;
};
/**
 * What the feed uses of the Web Locks API (navigator.locks).
 */
export type LockManagerLike = {
    request: (name: string, options: {
        signal?: AbortSignal;
    }, callback: () => Promise<void>) => Promise<void>;
};
export type FeedOptions = {
    /**
     * each event exactly once, in version order per channel
     */
    onEvent?: ((event: FeedEvent) => void) | undefined;
    /**
     * a channel's cursor was pruned away (410, or
     * SSE `event: reset`): reload your snapshot; events after info.head follow
     */
    onReset?: ((info: ResetInfo) => void) | undefined;
    /**
     * the status
     * or the transport changed
     */
    onStatus?: ((status: FeedStatus, transport: Transport | null) => void) | undefined;
    /**
     * every failed request or stream, for
     * logging; the feed recovers by itself, except from a 403 (error.channel is dropped)
     */
    onError?: ((error: FeedError) => void) | undefined;
    /**
     * default 'auto': sse → longpoll → poll and back
     */
    transport?: TransportMode | undefined;
    /**
     * where to start:
     * 'now' (default: only events published from now on), a version (for every
     * channel), a cursor string as `feed.cursor` returns it ("45" or
     * "orders=45,user:42=9"), or { channel: version | 'now' }. Channels it does
     * not name start at 'now'.
     */
    since?: string | number | Record<string, number | "now"> | undefined;
    /**
     * events per poll answer (server default otherwise)
     */
    limit?: number | undefined;
    /**
     * long-poll hold, seconds (the server may cap it); default 25
     */
    wait?: number | undefined;
    /**
     * send cookies cross-origin (EventSource
     * withCredentials, fetch credentials 'include')
     */
    withCredentials?: boolean | undefined;
    /**
     * sent as
     * `Authorization: Bearer`; a function is asked again after a 401 or an SSE
     * `event: auth`. With a token the event stream is read with fetch.
     */
    token?: string | (() => string | Promise<string>) | undefined;
    /**
     * share one connection with the other tabs of
     * this origin (default true where Web Locks and BroadcastChannel exist)
     */
    shared?: boolean | undefined;
    /**
     * SSE must open within this, else it counts as stalled
     */
    stallMs?: number | undefined;
    /**
     * a silent SSE stream is checked against the server after this
     */
    probeMs?: number | undefined;
    /**
     * how long the stream may lag behind a probe
     */
    graceMs?: number | undefined;
    /**
     * short-poll interval after news
     */
    minIntervalMs?: number | undefined;
    /**
     * short-poll interval when quiet
     */
    maxIntervalMs?: number | undefined;
    /**
     * first reconnect delay cap
     */
    backoffMs?: number | undefined;
    /**
     * largest reconnect delay cap
     */
    maxBackoffMs?: number | undefined;
    /**
     * transport failures (server still up) before stepping down
     */
    maxFailures?: number | undefined;
    /**
     * how long to stay below SSE before trying it again
     */
    climbMs?: number | undefined;
    /**
     * an empty long poll answered faster means the wait is not honoured
     */
    minHoldMs?: number | undefined;
    deps?: Deps | undefined;
};
/**
 * What subscribe() returns: a SharedFeed (the connection shared by the tabs
 * of the origin) unless `shared: false` or the browser lacks Web Locks or
 * BroadcastChannel, then a Feed of its own. Both have the same interface.
 */
export type Subscription = Feed | SharedFeed;
/**
 * A poll answer as the feed uses it.
 */
export type Answer = {
    status: number;
    /**
     * parsed JSON; null for a 304 or a body that is not JSON
     */
    body: any;
    etag: string | null;
    /**
     * seconds
     */
    retryAfter: number;
    /**
     * `Pgfeed-Database: down`
     */
    databaseDown: boolean;
};
/**
 * What a shared connection's leader learns from the Feed it runs.
 */
export type FeedHooks = {
    /**
     * heads learned for since 'now'
     */
    onResolved?: ((cursor: Map<string, number>) => void) | undefined;
};
export type Settings = Required<Pick<FeedOptions, "transport" | "since" | "wait" | "withCredentials" | "stallMs" | "probeMs" | "graceMs" | "minIntervalMs" | "maxIntervalMs" | "backoffMs" | "maxBackoffMs" | "maxFailures" | "climbMs" | "minHoldMs">>;
/**
 * The state of one connection attempt: everything it owns, so ending it
 * releases all of it at once. A callback that finds its run is no longer the
 * current one does nothing, which is how late fetch answers are ignored.
 */
export type Run = {
    timers: Set<any>;
    abort: AbortController;
    /**
     * the EventSource (or fetch reader), if this run opened one
     */
    es: {
        close: () => void;
    } | null;
    /**
     * 'resolve' | 'check' | a transport
     */
    kind: string;
    /**
     * short poll: the pending timer
     */
    next: any;
    /**
     * short poll: waiting for the tab to be shown
     */
    paused: boolean;
    /**
     * SSE: timer of the silent-stream check
     */
    probe: any;
    /**
     * SSE: timer giving the stream time to catch up
     */
    grace: any;
};
/**
 * What a SharedFeed lets its hub do: read its channels and cursors, hand it
 * what the leader broadcast.
 */
export type Port = {
    options: FeedOptions;
    channels: () => string[];
    positions: () => Map<string, number | null>;
    deliver: (event: any) => void;
    gone: (info: ResetInfo) => void;
    adopt: (cursor: Record<string, number>) => void;
    error: (e: ErrorMessage) => void;
    show: (status: FeedStatus, transport: Transport | null) => void;
};
export type ErrorMessage = {
    message: string;
    status: number;
    retryAfter: number;
    channel: string | null;
};
/**
 * Messages on the BroadcastChannel `pgfeed:<base URL>`:
 *   {t:'hello', tab, subs, need}  a tab's channels, and cursors it needs replayed from
 *   {t:'bye', tab}                a tab has no subscription left
 *   {t:'who'}                     a new leader asks every tab for a hello
 *   {t:'cursor', cursor}          the leader's position per channel (for since 'now')
 *   {t:'event', event} / {t:'reset', info} / {t:'error', error} / {t:'status', status, transport, mode}
 *   {t:'mode', mode}              a follower's setTransport, for the leader
 */
export type HubMessage = {
    t: string;
    [key: string]: any;
};
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
declare class Hub {
    /**
     * @param {string} base
     * @param {string} key  the absolute base URL
     * @param {Required<Deps>} d
     * @param {() => void} forget
     */
    constructor(base: string, key: string, d: Required<Deps>, forget: () => void);
    /** @type {FeedStatus} */ status: FeedStatus;
    /** @type {Transport | null} */ transport: Transport | null;
    /** @type {TransportMode} */ mode: TransportMode;
    /**
     * @param {string | string[]} channels
     * @param {FeedOptions} options
     */
    attach(channels: string | string[], options: FeedOptions): SharedFeed;
    /** @param {SharedFeed} feed */
    detach(feed: SharedFeed): void;
    /** @param {TransportMode} mode */
    setTransport(mode: TransportMode): void;
    #private;
}
export {};
