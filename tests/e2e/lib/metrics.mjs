// metrics — pgfeed's /_metrics (Prometheus text) read back, the one parser
// every e2e test uses.
import { request } from './http.mjs';

/**
 * Parses Prometheus text into a Map from series (name plus labels, as
 * written: `pgfeed_requests_total{transport="sse"}`) to value.
 * @param {string} text
 * @returns {Map<string, number>}
 */
export function parseMetrics(text) {
  const out = new Map();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) out.set(m[1], Number(m[2]));
  }
  return out;
}

/**
 * GET {mount}/_metrics from base (a URL, or a client from http.mjs) as
 * parseMetrics gives it.
 * @param {string | {base: string}} base
 */
export async function metrics(base, mount = '/feed') {
  const url = typeof base === 'string' ? base : base.base;
  const res = await request(url, `${mount}/_metrics`, { timeoutMs: 5000 });
  if (res.status !== 200) throw new Error(`${mount}/_metrics: ${res.status} ${res.body.slice(0, 200)}`);
  return parseMetrics(res.body);
}
