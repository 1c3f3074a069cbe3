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
        res.on('error', reject);
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
      reject(err);
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
