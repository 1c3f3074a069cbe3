// sse_probe — what the SSE contract tests (sse_*.test.mjs) add to the harness:
// an event-stream reader that parses the stream as it arrives (so tests read
// events from the OPEN stream, with the time each arrived), a FastCGI client
// that opens a stream and then stops reading (a slow reader), and a process's
// resident memory.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';

import { fcgiRequestBytes } from './fcgi_client.mjs';
import { lit, sql } from './pg.mjs';

/**
 * @typedef {object} SseItem
 * @property {'event'|'comment'|'retry'} kind
 * @property {number} at      ms since the stream's headers arrived
 * @property {string} [id]    event: the id field's value, undefined without one
 * @property {string} [event] event: the event field's value, undefined without one
 * @property {string} [data]  event: the data lines joined by \n
 * @property {string} [text]  comment: the text after ':'
 * @property {number} [retry] retry: the value
 */

/**
 * Parses text/event-stream incrementally, as the HTML spec's parser does
 * (lines end in \n, \r\n or \r; "field: value" with one optional space; a
 * blank line dispatches), but keeps what EventSource throws away: comments,
 * the event field of every event, whether an event had an id.
 */
export class SseParser {
  constructor(onItem) {
    this.onItem = onItem;
    this.pending = '';
    this.fields = null;
  }

  push(text) {
    this.pending += text;
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.pending);
      if (!m) return;
      // a lone \r at the end may be the first half of \r\n
      if (m[0] === '\r' && m.index === this.pending.length - 1) return;
      const line = this.pending.slice(0, m.index);
      this.pending = this.pending.slice(m.index + m[0].length);
      this.line(line);
    }
  }

  line(line) {
    if (line === '') {
      if (this.fields) this.onItem({ kind: 'event', ...this.fields, data: this.fields.data.join('\n') });
      this.fields = null;
      return;
    }
    if (line.startsWith(':')) {
      this.onItem({ kind: 'comment', text: line.slice(1).replace(/^ /, '') });
      return;
    }
    const colon = line.indexOf(':');
    const name = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (name === 'retry') {
      this.onItem({ kind: 'retry', retry: /^\d+$/.test(value) ? Number(value) : NaN, raw: value });
      return;
    }
    this.fields ??= { data: [] };
    if (name === 'data') this.fields.data.push(value);
    else if (name === 'id') this.fields.id = value;
    else if (name === 'event') this.fields.event = value;
    else (this.fields.other ??= []).push(line);
  }
}

/**
 * Opens an SSE request (GET, Accept: text/event-stream unless headers say
 * otherwise) and parses it as it arrives.
 *
 * The result: status, headers, items (every SseItem in order), events()
 * (just the events), raw() (the body so far), waitFor(what, predicate, ms)
 * (resolves with the predicate's truthy value, checked after every chunk;
 * rejects when the stream ends first), waitEvents(n, ms), ended (resolves
 * {clean, at} when the body ends or breaks), open() (the body has not ended),
 * close().
 * @param {string} base
 * @param {string} reqPath
 * @param {Record<string,string>} [headers]
 */
export function openSse(base, reqPath, headers = {}, { headersTimeoutMs = 10000 } = {}) {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        path: reqPath,
        headers: { Accept: 'text/event-stream', Connection: 'close', ...headers },
        agent: false,
      },
      (res) => {
        clearTimeout(timer);
        const started = Date.now();
        const items = [];
        let raw = '';
        let endedInfo = null;
        const waiters = new Set();
        const check = () => {
          for (const w of [...waiters]) {
            let value;
            try {
              value = w.predicate(stream);
            } catch (err) {
              waiters.delete(w);
              clearTimeout(w.timer);
              w.reject(err);
              continue;
            }
            if (value) {
              waiters.delete(w);
              clearTimeout(w.timer);
              w.resolve(value);
            } else if (endedInfo) {
              waiters.delete(w);
              clearTimeout(w.timer);
              w.reject(new Error(`stream ${reqPath}: ended (${JSON.stringify(endedInfo)}) before ${w.what}; received:\n${tail(raw)}`));
            }
          }
        };
        const parser = new SseParser((item) => items.push({ ...item, at: Date.now() - started }));
        let resolveEnded;
        const ended = new Promise((r) => {
          resolveEnded = r;
        });
        const finish = (clean, error) => {
          if (endedInfo) return;
          endedInfo = { clean, at: Date.now() - started, ...(error ? { error: error.message } : {}) };
          resolveEnded(endedInfo);
          check();
        };
        res.setEncoding('utf8');
        res.on('data', (chunk) => {
          raw += chunk;
          parser.push(chunk);
          check();
        });
        res.on('end', () => finish(res.complete));
        res.on('aborted', () => finish(false, new Error('aborted')));
        res.on('error', (err) => finish(false, err));
        res.on('close', () => finish(res.complete));
        const stream = {
          path: reqPath,
          status: res.statusCode,
          headers: res.headers,
          started,
          items,
          events: () => items.filter((i) => i.kind === 'event'),
          raw: () => raw,
          ended,
          open: () => !endedInfo,
          waitFor: (what, predicate, ms) =>
            new Promise((res2, rej2) => {
              const w = { what, predicate, resolve: res2, reject: rej2 };
              w.timer = setTimeout(() => {
                waiters.delete(w);
                rej2(new Error(`stream ${reqPath}: no ${what} within ${ms} ms; received:\n${tail(raw)}`));
              }, ms);
              waiters.add(w);
              check();
            }),
          waitEvents: (n, ms) =>
            stream.waitFor(
              `${n} events`,
              (s) => {
                const ev = s.events();
                return ev.length >= n && ev;
              },
              ms,
            ),
          close: () => {
            req.destroy();
            finish(false, new Error('closed by the test'));
          },
        };
        resolve(stream);
      },
    );
    const timer = setTimeout(() => {
      req.destroy(new Error(`no response headers within ${headersTimeoutMs} ms`));
    }, headersTimeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`GET ${reqPath} (SSE): ${err.message}`));
    });
    req.end();
  });
}

function tail(text, n = 1500) {
  return text.length > n ? `[... ${text.length - n} bytes before]${text.slice(-n)}` : text;
}

/** The JSON of an event's data. */
export function eventJson(item) {
  return JSON.parse(item.data);
}

/** Versions of a one-channel stream's plain (no event: field) events. */
export function versionsOf(items) {
  return items.filter((i) => i.kind === 'event' && i.event === undefined).map((i) => JSON.parse(i.data).version);
}

/** [from, from + 1, ..., to]. */
export function range(from, to) {
  const out = [];
  for (let v = from; v <= to; v++) out.push(v);
  return out;
}

/**
 * Publishes events from..to on channel in one transaction, in order, each
 * {type: 'big', data: {n, pad: size times "x"}}: the padding is made in SQL,
 * so the command stays small however large the events are.
 */
export function publishPadded(channel, from, to, size) {
  return sql(
    `DO $$ BEGIN FOR i IN ${Number(from)}..${Number(to)} LOOP ` +
      `PERFORM pgfeed.publish(${lit(channel)}, 'big', jsonb_build_object('n', i, 'pad', repeat('x', ${Number(size)}))); ` +
      'END LOOP; END $$',
  );
}

/** Every SseItem of a complete body text. */
export function parseSse(text) {
  const items = [];
  const p = new SseParser((i) => items.push(i));
  p.push(text);
  return items;
}

// ---- a FastCGI client that stops reading ---------------------------------

const FCGI_END_REQUEST = 3;
const FCGI_STDOUT = 6;

/**
 * Sends an SSE GET straight to a FastCGI responder on a Unix socket, then
 * reads nothing more: the responder's writes pile up in the socket, as behind
 * a reader that stopped reading. drain() reads on until the responder closes
 * the connection and resolves with {status, head, body (stdout after the
 * headers), endRequest (FCGI_END_REQUEST seen), bytes}; destroy() hangs up.
 * @param {string} socketPath
 * @param {string} pathInfo
 * @param {{query?: string, headers?: Record<string,string>}} [options]
 */
export function fcgiStalledStream(socketPath, pathInfo, options = {}) {
  const sock = net.connect({ path: socketPath });
  // Paused with no 'data' listener: node reads one buffer's worth, then stops.
  sock.pause();
  const connected = new Promise((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  connected.catch(() => {});
  const request = fcgiRequestBytes(pathInfo, {
    ...options,
    headers: { Accept: 'text/event-stream', ...(options.headers ?? {}) },
  });
  sock.on('connect', () => sock.write(request));
  sock.on('error', () => {});
  return {
    connected,
    destroy: () => sock.destroy(),
    drain: (timeoutMs = 10000) =>
      new Promise((resolve, reject) => {
        const chunks = [];
        const timer = setTimeout(() => {
          sock.destroy();
          reject(new Error(`the responder did not close the stalled stream within ${timeoutMs} ms of reading on (${Buffer.concat(chunks).length} bytes read)`));
        }, timeoutMs);
        sock.on('data', (d) => chunks.push(d));
        sock.on('close', () => {
          clearTimeout(timer);
          let input = Buffer.concat(chunks);
          const bytes = input.length;
          let stdout = Buffer.alloc(0);
          let endRequest = false;
          while (input.length >= 8) {
            const len = input.readUInt16BE(4);
            const pad = input[6];
            if (input.length < 8 + len + pad) break;
            if (input[1] === FCGI_STDOUT) stdout = Buffer.concat([stdout, input.subarray(8, 8 + len)]);
            else if (input[1] === FCGI_END_REQUEST) endRequest = true;
            input = input.subarray(8 + len + pad);
          }
          const text = stdout.toString('utf8');
          const split = text.indexOf('\r\n\r\n');
          const head = split >= 0 ? text.slice(0, split) : '';
          const status = /^Status: (\d+)/im.exec(head);
          resolve({ status: status ? Number(status[1]) : 200, head, body: split >= 0 ? text.slice(split + 4) : '', endRequest, bytes });
        });
        sock.resume();
      }),
  };
}

/** VmRSS of a process in KiB, from /proc/<pid>/status. */
export function rssKiB(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]);
}
