// fcgi_raw — a FastCGI connection under the test's full control, for hostile
// and protocol-level checks straight against `pgfeed --listen`: any record in
// any order, byte by byte or not at all, several requests over one kept
// connection, and every record pgfeed sends back, parsed.
import net from 'node:net';

export const T = {
  BEGIN_REQUEST: 1,
  ABORT_REQUEST: 2,
  END_REQUEST: 3,
  PARAMS: 4,
  STDIN: 5,
  STDOUT: 6,
  STDERR: 7,
  DATA: 8,
  GET_VALUES: 9,
  GET_VALUES_RESULT: 10,
  UNKNOWN_TYPE: 11,
};

/** One FastCGI record (content of at most 65535 bytes), padded by `padding` zero bytes. */
export function record(type, content = Buffer.alloc(0), id = 1, padding = 0) {
  const header = Buffer.from([1, type, id >> 8, id & 0xff, content.length >> 8, content.length & 0xff, padding, 0]);
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

/** BEGIN_REQUEST for id: role 1 (responder) unless given; keep sets FCGI_KEEP_CONN. */
export function begin(id = 1, { keep = false, role = 1 } = {}) {
  return record(T.BEGIN_REQUEST, Buffer.from([role >> 8, role & 0xff, keep ? 1 : 0, 0, 0, 0, 0, 0]), id);
}

/** The CGI params of a GET of pathInfo (headers as HTTP_*), plus extra raw params. */
export function getParams(pathInfo, { query = '', headers = {}, method = 'GET', extra = {} } = {}) {
  const p = {
    GATEWAY_INTERFACE: 'CGI/1.1',
    REQUEST_METHOD: method,
    SCRIPT_NAME: '/feed',
    PATH_INFO: pathInfo,
    QUERY_STRING: query,
    SERVER_PROTOCOL: 'HTTP/1.1',
    REMOTE_ADDR: '127.0.0.1',
  };
  for (const [name, value] of Object.entries(headers)) p[`HTTP_${name.toUpperCase().replaceAll('-', '_')}`] = value;
  return { ...p, ...extra };
}

/** A whole request: BEGIN, params in one record, the empty PARAMS, STDIN body and its end. */
export function requestBytes(id, params, { keep = false, body = '' } = {}) {
  const parts = [begin(id, { keep }), record(T.PARAMS, encodeParams(params), id), record(T.PARAMS, Buffer.alloc(0), id)];
  const b = Buffer.from(body);
  for (let at = 0; at < b.length; at += 65535) parts.push(record(T.STDIN, b.subarray(at, at + 65535), id));
  parts.push(record(T.STDIN, Buffer.alloc(0), id));
  return Buffer.concat(parts);
}

/** Splits an HTTP-over-CGI answer (STDOUT bytes) into status, headers, body. */
export function parseAnswer(stdout) {
  const text = stdout.toString('utf8');
  const split = text.indexOf('\r\n\r\n');
  const head = split >= 0 ? text.slice(0, split) : '';
  const headers = {};
  for (const line of head.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const status = headers.status ? Number.parseInt(headers.status, 10) : split >= 0 ? 200 : null;
  const body = split >= 0 ? text.slice(split + 4) : '';
  let json;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  return { status, headers, body, json };
}

/**
 * One connection to a FastCGI socket. Every record pgfeed sends is kept in
 * `records` ({type, id, content}), the types of the records completed by each
 * read in `chunks`; `closed` resolves when pgfeed closes.
 */
export class RawConn {
  constructor(socketPath) {
    this.sock = net.connect(socketPath);
    this.records = [];
    this.chunks = []; // each read's records: pgfeed's one write per answer arrives as one
    this.input = Buffer.alloc(0);
    this.isClosed = false;
    this.waiters = [];
    this.connected = new Promise((resolve, reject) => {
      this.sock.once('connect', resolve);
      this.sock.once('error', reject);
    });
    this.connected.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.sock.on('close', () => {
        this.isClosed = true;
        resolve();
        this.wake();
      });
    });
    this.sock.on('error', () => {});
    this.sock.on('data', (data) => {
      this.input = Buffer.concat([this.input, data]);
      const chunk = [];
      this.chunks.push(chunk);
      while (this.input.length >= 8) {
        const len = this.input.readUInt16BE(4);
        const pad = this.input[6];
        if (this.input.length < 8 + len + pad) break;
        this.records.push({ type: this.input[1], id: this.input.readUInt16BE(2), content: Buffer.from(this.input.subarray(8, 8 + len)) });
        chunk.push(this.input[1]);
        this.input = this.input.subarray(8 + len + pad);
      }
      this.wake();
    });
  }

  wake() {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Writes bytes (after connecting); false when the socket is already gone. */
  async send(bytes) {
    await this.connected;
    if (this.isClosed || this.sock.destroyed) return false;
    return new Promise((resolve) => this.sock.write(bytes, (err) => resolve(!err)));
  }

  /** Resolves with check()'s value once truthy, or with null when pgfeed closed or after timeoutMs. */
  async until(check, timeoutMs = 3000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = check();
      if (v) return v;
      if (this.isClosed || Date.now() >= deadline) return null;
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The answer to request id once its END_REQUEST came, else null (closed or timed out). */
  async answer(id, timeoutMs = 3000) {
    const end = await this.until(() => this.records.find((r) => r.type === T.END_REQUEST && r.id === id), timeoutMs);
    if (!end) return null;
    const stdout = Buffer.concat(this.records.filter((r) => r.type === T.STDOUT && r.id === id).map((r) => r.content));
    return { ...parseAnswer(stdout), protocolStatus: end.content[4] };
  }

  /** True when pgfeed closed the connection within timeoutMs. */
  async closesWithin(timeoutMs) {
    await this.until(() => false, timeoutMs);
    return this.isClosed;
  }

  destroy() {
    this.sock.destroy();
  }
}

/**
 * One GET over a new connection, timed: the answer plus the milliseconds it
 * took, or {status: null, ms} when none came within timeoutMs.
 */
export async function timedGet(socketPath, pathInfo, query = '', timeoutMs = 10000) {
  const c = new RawConn(socketPath);
  const started = process.hrtime.bigint();
  await c.send(requestBytes(1, getParams(pathInfo, { query })));
  const a = await c.answer(1, timeoutMs);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  c.destroy();
  return a ? { ...a, ms } : { status: null, ms };
}

