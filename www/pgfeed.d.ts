/**
 * pgfeed.js — the browser client for pgfeed change feeds.
 *
 *   import { subscribe } from './pgfeed.js';
 *   const feed = subscribe('/feed', ['orders'], {
 *     onEvent: (e) => render(e),
 *     onReset: ({ channel }) => reloadSnapshot(channel),
 *     onStatus: (status, transport) => showIndicator(status, transport),
 *   });
 *   // later: feed.close();
 */

/** How events reach the browser, best first. */
export type Transport = 'sse' | 'longpoll' | 'poll';
/** 'auto' climbs the ladder sse → longpoll → poll and back; a transport forces it. */
export type TransportMode = 'auto' | Transport;
/**
 * connecting: learning the cursor or opening a transport;
 * live: an event stream or long poll is up (events arrive as published);
 * polling: short polls succeed (events arrive within the poll interval);
 * offline: the last attempt failed, retrying with backoff;
 * closed: close() was called.
 */
export type FeedStatus = 'connecting' | 'live' | 'polling' | 'offline' | 'closed';

/** One change, as the server sends it. Versions are per channel, gapless, from 1. */
export interface FeedEvent<T = unknown> {
  channel: string;
  version: number;
  type: string;
  data: T;
  /** ISO 8601 commit time, e.g. "2026-11-22T05:30:33.123456Z". */
  time: string;
}

/** The server no longer has the events after the feed's cursor for this channel. */
export interface ResetInfo {
  channel: string;
  /** Oldest version still retained (null if the server did not say). */
  oldest: number | null;
  /**
   * The feed resumes after this version: reload a snapshot of the channel's
   * state, then keep applying events (null: the feed learns the head itself).
   */
  head: number | null;
  /**
   * pruned: retention dropped events the feed had not delivered yet;
   * reset: the channel's head went back below the feed's cursor (e.g. a restored database).
   */
  reason: 'pruned' | 'reset';
}

/** What the feed uses of `document`. */
export interface VisibilitySource {
  readonly visibilityState: string;
  addEventListener(type: 'visibilitychange', listener: () => void): void;
  removeEventListener(type: 'visibilitychange', listener: () => void): void;
}

/** Everything time- and network-related, replaceable for tests. Defaults: the browser's. */
export interface FeedDeps {
  fetch?: typeof fetch;
  /** A constructor like the DOM's EventSource; null means "not available". */
  EventSource?: (new (url: string, init?: { withCredentials?: boolean }) => EventSource) | null;
  setTimeout?: (fn: () => void, ms: number) => any;
  clearTimeout?: (id: any) => void;
  /** Uniform in [0, 1). */
  random?: () => number;
  /** Milliseconds, monotonic enough to time a long poll. */
  now?: () => number;
  /** Only visibilityState and the visibilitychange listener are used; null: always visible. */
  document?: VisibilitySource | null;
}

export interface FeedOptions<T = unknown> {
  /** Each event exactly once, in version order per channel. */
  onEvent?: (event: FeedEvent<T>) => void;
  /** A channel's cursor was pruned away (410, or SSE `event: reset`). */
  onReset?: (info: ResetInfo) => void;
  /** Called when the status or the transport changes. */
  onStatus?: (status: FeedStatus, transport: Transport | null) => void;
  /** Every failed request or stream, for logging; the feed recovers by itself. */
  onError?: (error: FeedError) => void;
  /** Default 'auto'. */
  transport?: TransportMode;
  /**
   * Where to start: 'now' (default: only events published from now on), a
   * version (for every channel), a cursor string as `feed.cursor` returns it
   * ("45" or "orders=45,user:42=9"), or { channel: version | 'now' }.
   * Channels it does not name start at 'now'.
   */
  since?: number | string | Record<string, number | 'now'>;
  /** Events per poll answer; the server's default (100) otherwise. */
  limit?: number;
  /** Long-poll hold in seconds (the server may cap it). Default 25. */
  wait?: number;
  /** Send cookies to another origin (EventSource withCredentials, fetch credentials 'include'). */
  withCredentials?: boolean;
  /** An event stream must open within this, or SSE counts as stalled. Default 10 000. */
  stallMs?: number;
  /**
   * After this much silence an open stream is checked with one conditional
   * poll, to catch a proxy that buffers the stream body. Default 60 000.
   */
  probeMs?: number;
  /** How long the stream may lag behind what that check saw. Default 5 000. */
  graceMs?: number;
  /** Short-poll interval after news; it grows ×1.5 per quiet poll up to maxIntervalMs. Default 2 000. */
  minIntervalMs?: number;
  /** Default 30 000. */
  maxIntervalMs?: number;
  /** Reconnect delays are uniform in [0, min(maxBackoffMs, backoffMs·2^n)). Default 1 000. */
  backoffMs?: number;
  /** Default 60 000. */
  maxBackoffMs?: number;
  /** Failures of a transport while the server answers polls, before stepping down. Default 3. */
  maxFailures?: number;
  /** After stepping down, try SSE again after this long. Default 300 000. */
  climbMs?: number;
  /** An empty long-poll answer faster than this means wait= is not honoured. Default 1 000. */
  minHoldMs?: number;
  deps?: FeedDeps;
}

/** A failed request or stream. */
export class FeedError extends Error {
  /** The HTTP status, or 0 for a network error, timeout or stream failure. */
  readonly status: number;
  /** Seconds from Retry-After (0 if none). */
  readonly retryAfter: number;
  constructor(message: string, status?: number, retryAfter?: number);
}

export class Feed {
  /** Use subscribe(). */
  constructor(base: string, channels: string | string[], options?: FeedOptions);
  readonly status: FeedStatus;
  /** The transport in use or being tried; null once closed. */
  readonly transport: Transport | null;
  /** 'auto', or the forced transport. */
  readonly mode: TransportMode;
  /** The position reached, in the server's cursor syntax; pass it as `since` to resume. Null until known. */
  readonly cursor: string | null;
  /** Switch transport (or back to 'auto') without missing or repeating an event. */
  setTransport(mode: TransportMode): void;
  /** Close the stream, abort requests, clear timers and listeners. Idempotent. */
  close(): void;
}

export const DEFAULTS: Readonly<Required<Pick<FeedOptions,
  | 'transport' | 'since' | 'wait' | 'withCredentials' | 'stallMs' | 'probeMs' | 'graceMs'
  | 'minIntervalMs' | 'maxIntervalMs' | 'backoffMs' | 'maxBackoffMs' | 'maxFailures'
  | 'climbMs' | 'minHoldMs'>>>;

/**
 * Follow one or more channels of a pgfeed mounted at base (e.g. '/feed').
 * Throws TypeError for an invalid channel name, transport or since.
 */
export function subscribe<T = unknown>(
  base: string,
  channels: string | string[],
  options?: FeedOptions<T>,
): Feed;
