// fcgi_client — a minimal FastCGI client (one request per connection, the way
// nginx, lighttpd and mod_proxy_fcgi talk to pgfeed) for tests that need to
// hold the connection to pgfeed themselves: close it without any web server
// in between, or see exactly what pgfeed wrote.
import net from 'node:net';

const VERSION = 1;
const BEGIN_REQUEST = 1;
const END_REQUEST = 3;
const PARAMS = 4;
const STDIN = 5;
const STDOUT = 6;
const STDERR = 7;
const RESPONDER = 1;
const REQUEST_ID = 1;

/** One FastCGI record (content of at most 65535 bytes), padded by `padding` zero bytes. */
export function record(type, content = Buffer.alloc(0), id = REQUEST_ID, padding = 0) {
  const header = Buffer.from([VERSION, type, id >> 8, id & 0xff, content.length >> 8, content.length & 0xff, padding, 0]);
  return Buffer.concat([header, content, Buffer.alloc(padding)]);
}

function length(n) {
  if (n < 128) return Buffer.from([n]);
  const b = Buffer.alloc(4);
  b.writeUInt32BE((n | 0x80000000) >>> 0);
  return b;
}

/** Name-value pairs as FastCGI encodes them (PARAMS, GET_VALUES). */
export function encodeParams(params) {
  const parts = [];
  for (const [name, value] of Object.entries(params)) {
    const n = Buffer.from(name);
    const v = Buffer.from(String(value));
    parts.push(length(n.length), length(v.length), n, v);
  }
  return Buffer.concat(parts);
}

/**
 * The bytes of one GET request as a web server sends them: BEGIN_REQUEST (no
 * FCGI_KEEP_CONN), the CGI params (HTTP request headers as HTTP_*), an empty
 * PARAMS and an empty STDIN record.
 * @param {string} pathInfo  e.g. /orders
 * @param {{query?: string, headers?: Record<string,string>, params?: Record<string,string>}} [options]
 *   params: CGI variables to set or replace (e.g. REMOTE_ADDR)
 */
export function fcgiRequestBytes(pathInfo, options = {}) {
  const params = {
    GATEWAY_INTERFACE: 'CGI/1.1',
    REQUEST_METHOD: 'GET',
    SCRIPT_NAME: '/feed',
    PATH_INFO: pathInfo,
    QUERY_STRING: options.query ?? '',
    REQUEST_URI: `/feed${pathInfo}${options.query ? `?${options.query}` : ''}`,
    SERVER_PROTOCOL: 'HTTP/1.1',
    SERVER_NAME: '127.0.0.1',
    SERVER_PORT: '80',
    REMOTE_ADDR: '127.0.0.1',
    ...options.params,
  };
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    params[`HTTP_${name.toUpperCase().replaceAll('-', '_')}`] = value;
  }
  const begin = Buffer.from([0, RESPONDER, 0 /* no FCGI_KEEP_CONN */, 0, 0, 0, 0, 0]);
  return Buffer.concat([record(BEGIN_REQUEST, begin), record(PARAMS, encodeParams(params)), record(PARAMS), record(STDIN)]);
}

/**
 * Sends one GET to a FastCGI responder on a Unix socket.
 * @param {string} socketPath
 * @param {string} pathInfo  e.g. /orders
 * @param {{query?: string, headers?: Record<string,string>}} [options]
 *   headers: HTTP request headers, passed as HTTP_* params
 * @returns {{done: Promise<{status: number|null, headers: Record<string,string>,
 *   body: string, ended: boolean, closedBy: 'server'|'client'}>,
 *   connected: Promise<void>, abort: () => void}}
 *   ended: pgfeed sent FCGI_END_REQUEST
 */
export function fcgiGet(socketPath, pathInfo, options = {}) {
  const sock = net.connect(socketPath);
  let aborted = false;
  const connected = new Promise((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  connected.catch(() => {});
  sock.on('connect', () => sock.write(fcgiRequestBytes(pathInfo, options)));
  const done = new Promise((resolve) => {
    let input = Buffer.alloc(0);
    let stdout = Buffer.alloc(0);
    let ended = false;
    sock.on('data', (data) => {
      input = Buffer.concat([input, data]);
      while (input.length >= 8) {
        const type = input[1];
        const len = input.readUInt16BE(4);
        const pad = input[6];
        if (input.length < 8 + len + pad) break;
        const content = input.subarray(8, 8 + len);
        if (type === STDOUT) stdout = Buffer.concat([stdout, content]);
        else if (type === END_REQUEST) ended = true;
        else if (type !== STDERR) throw new Error(`fcgi_client: unexpected record type ${type}`);
        input = input.subarray(8 + len + pad);
      }
    });
    const finish = () => {
      const text = stdout.toString('utf8');
      const split = text.indexOf('\r\n\r\n');
      const head = split >= 0 ? text.slice(0, split) : '';
      const headers = {};
      for (const line of head.split('\r\n')) {
        const colon = line.indexOf(':');
        if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const status = headers.status ? Number.parseInt(headers.status, 10) : null;
      resolve({ status, headers, body: split >= 0 ? text.slice(split + 4) : text, ended, closedBy: aborted ? 'client' : 'server' });
    };
    sock.on('close', finish);
    sock.on('error', () => {}); // 'close' follows
  });
  return {
    connected,
    done,
    abort: () => {
      aborted = true;
      sock.destroy();
    },
  };
}
