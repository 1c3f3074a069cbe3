// file_server — one server for a whole test file: started before its first
// test, stopped after its last, and the file fails if pgfeed logged a crash,
// a leak or undefined behaviour meanwhile (sanitizer builds), whatever the
// HTTP answers looked like.
import assert from 'node:assert/strict';
import { after, before } from 'node:test';

import { crashLines } from './servers.mjs';

/**
 * Registers the hooks; returns a function giving the running server.
 * @param {() => Promise<object>} start  e.g. () => startNginx({daemonEnv})
 */
export function serverForFile(start) {
  let server;
  before(async () => {
    server = await start();
  });
  after(async () => {
    if (!server) return;
    await server.stop();
    const crashes = crashLines(server.logsSince());
    server.cleanup();
    assert.deepEqual(crashes, [], 'pgfeed logged no crash');
  });
  return () => server;
}
