// resilience — what the resilience tests (resilience_*.test.mjs) add to the
// harness: the throwaway cluster taken down and brought back, waiting for a
// condition, and HTTP requests a test can read as they arrive or abort
// (pgfeed's metrics are in metrics.mjs).
//
// The cluster is the one ctest's fixture started: its directory is the parent
// of PGHOST (<dir>/socket), and tests/pg/cluster.sh restarts, stops and starts
// it again there without wiping it.
import { execFile } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { testEnv } from './env.mjs';

/** The cluster directory ctest's fixture uses (PGHOST is <dir>/socket). */
export function clusterDir() {
  const host = testEnv().pg.PGHOST;
  if (!host.startsWith('/') || path.basename(host) !== 'socket') {
    throw new Error(`resilience: PGHOST=${host} is not <cluster dir>/socket; run through ctest`);
  }
  return path.dirname(host);
}

/**
 * Runs `cluster.sh COMMAND <cluster dir>` (restart, stop-fast, start-again)
 * and resolves with how long it took.
 * @returns {Promise<{ms: number, output: string}>}
 */
export function cluster(command) {
  const script = path.join(testEnv().sourceDir, 'tests', 'pg', 'cluster.sh');
  const started = Date.now();
  return new Promise((resolve, reject) => {
    execFile(script, [command, clusterDir()], { timeout: 90000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`cluster.sh ${command} failed: ${stderr.trim() || err.message}`));
      else resolve({ ms: Date.now() - started, output: stdout.trim() });
    });
  });
}

/**
 * Polls until check() returns a truthy value and returns it; throws with
 * describe()'s text after timeoutMs.
 */
export async function waitFor(what, check, { timeoutMs = 5000, everyMs = 50, describe } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await check();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) {
      const state = describe ? await describe() : last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`${what}: not within ${timeoutMs} ms (${state})`);
    }
    await sleep(everyMs);
  }
}

/**
 * A request kept open: `response` resolves once the status line and headers
 * are in, `done` once the body ended ({clean: true}) or broke ({clean: false,
 * error}); `chunks` collects the body as it arrives; abort() closes the
 * connection the way a leaving browser does.
 * @param {string} base
 * @param {string} reqPath
 * @param {{headers?: Record<string,string>, onData?: (text: string) => void}} [options]
 */
export function openRequest(base, reqPath, options = {}) {
  const url = new URL(base);
  const started = Date.now();
  const chunks = [];
  let resolveResponse;
  let rejectResponse;
  const response = new Promise((resolve, reject) => {
    resolveResponse = resolve;
    rejectResponse = reject;
  });
  let finish;
  const done = new Promise((resolve) => {
    finish = resolve;
  });
  let settled = false;
  const settle = (result) => {
    if (settled) return;
    settled = true;
    finish({ ...result, body: chunks.join(''), ms: Date.now() - started });
  };
  const req = http.request(
    {
      host: url.hostname,
      port: url.port,
      method: 'GET',
      path: reqPath,
      headers: { Connection: 'close', ...options.headers },
      agent: false,
    },
    (res) => {
      resolveResponse({ status: res.statusCode, headers: res.headers, ms: Date.now() - started });
      res.setEncoding('utf8');
      res.on('data', (text) => {
        chunks.push(text);
        options.onData?.(text);
      });
      res.on('end', () => settle({ clean: res.complete, status: res.statusCode, headers: res.headers }));
      res.on('aborted', () => settle({ clean: false, error: new Error('response aborted') }));
      res.on('error', (error) => settle({ clean: false, error }));
      res.on('close', () => settle({ clean: res.complete, status: res.statusCode, headers: res.headers }));
    },
  );
  req.on('error', (error) => {
    rejectResponse(error);
    settle({ clean: false, error });
  });
  req.end();
  response.catch(() => {}); // a test that only awaits `done` must not see an unhandled rejection
  return {
    response,
    done,
    chunks,
    text: () => chunks.join(''),
    abort: () => req.destroy(),
  };
}
