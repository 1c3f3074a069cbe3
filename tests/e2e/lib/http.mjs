// http — a plain HTTP/1.1 client for the e2e tests.
//
// node:http rather than fetch: the tests send paths exactly as written
// (%00, %G1, 10 KB query strings), any method, and read headers such as
// ETag as they arrive. One connection per request, closed afterwards.
import http from 'node:http';

/**
 * @typedef {object} Response
 * @property {number} status
 * @property {Record<string, string|string[]>} headers  lower-case names
 * @property {string} body
 * @property {any} json  the parsed body when it is JSON, else undefined
 * @property {number} ms  time until the body was complete
 */

/**
 * Sends one request.
 * @param {string} base  e.g. http://127.0.0.1:8080
 * @param {string} path  sent as is
 * @param {{method?: string, headers?: Record<string,string>, body?: string, timeoutMs?: number}} [options]
 * @returns {Promise<Response>}
 */
export function request(base, path, options = {}) {
  const url = new URL(base);
  const started = Date.now();
  const timeoutMs = options.timeoutMs ?? 20000;
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        method: options.method ?? 'GET',
        path,
        headers: { Connection: 'close', ...options.headers },
        agent: false,
      },
      (res) => {
        const chunks = [];
        res.on('data', (chunk) => chunks.push(chunk));
        res.on('error', (err) => {
          clearTimeout(timer);
          reject(new Error(`${options.method ?? 'GET'} ${path.slice(0, 120)}: ${err.message} (after status ${res.statusCode})`));
        });
        res.on('end', () => {
          clearTimeout(timer);
          const body = Buffer.concat(chunks).toString('utf8');
          let json;
          if (/json/.test(res.headers['content-type'] ?? '')) {
            try {
              json = JSON.parse(body);
            } catch {
              json = undefined;
            }
          }
          resolve({ status: res.statusCode, headers: res.headers, body, json, ms: Date.now() - started });
        });
      },
    );
    const timer = setTimeout(() => {
      req.destroy(new Error(`${options.method ?? 'GET'} ${path}: no complete answer within ${timeoutMs} ms`));
    }, timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${options.method ?? 'GET'} ${path.slice(0, 120)}: ${err.message}`));
    });
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

/** Shorthand bound to one server. */
export function client(base) {
  return {
    base,
    get: (path, headers, extra = {}) => request(base, path, { ...extra, headers }),
    send: (method, path, options = {}) => request(base, path, { ...options, method }),
  };
}

/**
 * Opens a streaming GET (SSE) and collects what arrives, as it arrives.
 * @returns {Promise<{status: number, headers: object, text: () => string,
 *   waitFor: (re: RegExp, ms: number) => Promise<string>,
 *   ended: (ms: number) => Promise<number>, close: () => void}>}
 *   ended: resolves with Date.now() when the server ends the response
 */
export function openStream(base, path, headers = {}, headersTimeoutMs = 10000) {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      req.destroy(new Error(`no response headers within ${headersTimeoutMs} ms (the server holds the stream back)`));
    }, headersTimeoutMs);
    const req = http.request(
      { host: url.hostname, port: url.port, path, headers: { Connection: 'close', ...headers }, agent: false },
      (res) => {
        clearTimeout(timer);
        let received = '';
        let endedAt = null;
        const endWaiters = [];
        const waiters = [];
        const wake = () => {
          for (const w of [...waiters]) {
            const m = w.re.exec(received);
            if (m) {
              waiters.splice(waiters.indexOf(w), 1);
              clearTimeout(w.timer);
              w.resolve(m[0]);
            }
          }
        };
        res.setEncoding('utf8');
        res.on('data', (chunk) => {
          received += chunk;
          wake();
        });
        res.on('error', () => {});
        res.on('end', () => {
          endedAt = Date.now();
          for (const w of endWaiters.splice(0)) w(endedAt);
        });
        resolve({
          status: res.statusCode,
          headers: res.headers,
          text: () => received,
          waitFor: (re, ms) =>
            new Promise((res2, rej2) => {
              const w = { re, resolve: res2 };
              w.timer = setTimeout(() => {
                waiters.splice(waiters.indexOf(w), 1);
                rej2(new Error(`stream ${path}: no ${re} within ${ms} ms; received so far:\n${received.slice(-1500)}`));
              }, ms);
              waiters.push(w);
              wake();
            }),
          ended: (ms) =>
            new Promise((res2, rej2) => {
              if (endedAt !== null) return res2(endedAt);
              const timer2 = setTimeout(() => rej2(new Error(`stream ${path}: still open after ${ms} ms`)), ms);
              endWaiters.push((t) => {
                clearTimeout(timer2);
                res2(t);
              });
            }),
          close: () => req.destroy(),
        });
      },
    );
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`GET ${path} (stream): ${err.message}`));
    });
    req.end();
  });
}
