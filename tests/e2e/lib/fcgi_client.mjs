// fcgi_client — a minimal FastCGI client (one request per connection, the way
// nginx, lighttpd and mod_proxy_fcgi talk to pgfeed) for tests that need to
// hold the connection to pgfeed themselves: close it without any web server
// in between, or see exactly what pgfeed wrote. The records and the answer are
// fcgi_raw's.
import { getParams, parseAnswer, RawConn, requestBytes, T } from './fcgi_raw.mjs';

const REQUEST_ID = 1;

/**
 * The bytes of one GET request as a web server sends them: BEGIN_REQUEST (no
 * FCGI_KEEP_CONN), the CGI params (HTTP request headers as HTTP_*), an empty
 * PARAMS and an empty STDIN record.
 * @param {string} pathInfo  e.g. /orders
 * @param {{query?: string, headers?: Record<string,string>, params?: Record<string,string>}} [options]
 *   params: CGI variables to set or replace (e.g. REMOTE_ADDR)
 */
export function fcgiRequestBytes(pathInfo, options = {}) {
  const query = options.query ?? '';
  const params = getParams(pathInfo, {
    query,
    headers: options.headers,
    extra: {
      REQUEST_URI: `/feed${pathInfo}${query ? `?${query}` : ''}`,
      SERVER_NAME: '127.0.0.1',
      SERVER_PORT: '80',
      ...options.params,
    },
  });
  return requestBytes(REQUEST_ID, params);
}

/**
 * Sends one GET to a FastCGI responder on a Unix socket.
 * @param {string} socketPath
 * @param {string} pathInfo  e.g. /orders
 * @param {{query?: string, headers?: Record<string,string>, params?: Record<string,string>}} [options]
 *   headers: HTTP request headers, passed as HTTP_* params
 * @returns {{done: Promise<{status: number|null, headers: Record<string,string>,
 *   body: string, ended: boolean, closedBy: 'server'|'client'}>,
 *   connected: Promise<void>, abort: () => void}}
 *   status null: pgfeed wrote no answer head; ended: pgfeed sent FCGI_END_REQUEST
 */
export function fcgiGet(socketPath, pathInfo, options = {}) {
  const conn = new RawConn(socketPath);
  let aborted = false;
  conn.send(fcgiRequestBytes(pathInfo, options)).catch(() => {}); // a refused connect closes it
  const done = conn.closed.then(() => {
    const ours = conn.records.filter((r) => r.id === REQUEST_ID);
    const stdout = Buffer.concat(ours.filter((r) => r.type === T.STDOUT).map((r) => r.content));
    const ended = ours.some((r) => r.type === T.END_REQUEST);
    return { ...parseAnswer(stdout), ended, closedBy: aborted ? 'client' : 'server' };
  });
  return {
    connected: conn.connected,
    done,
    abort: () => {
      aborted = true;
      conn.destroy();
    },
  };
}
