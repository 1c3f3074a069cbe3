// sse — an SSE stream's timing through a server: heartbeats get through as
// they are written, and the stream ends after its lifetime so the browser
// reconnects. Both settings reach pgfeed through the server's own variables
// (Define, SetEnv, bin-copy-environment, the daemon's environment), so this
// also checks that plumbing.
import assert from 'node:assert/strict';
import { describe } from 'node:test';

import { checkWith } from './foundation.mjs';
import { openStream } from './http.mjs';
import { unique } from './pg.mjs';
import { serverFor } from './servers.mjs';

/** The settings a server under sseSuite must give pgfeed. */
export const SSE_SETTINGS = { heartbeat: 1, lifetime: 4 };

/**
 * @param {string} title
 * @param {() => Promise<any>} start  the server, with PGFEED_HEARTBEAT and
 *   PGFEED_SSE_LIFETIME set to SSE_SETTINGS
 */
export function sseSuite(title, start) {
  let server;
  const check = checkWith(() => server());

  describe(title, () => {
    server = serverFor(start);

    check(`heartbeats arrive every ${SSE_SETTINGS.heartbeat} s and the stream ends after ${SSE_SETTINGS.lifetime} s`, async () => {
      const ch = unique('e2e_sse');
      const opened = Date.now();
      const stream = await openStream(server().base, `/feed/${ch}`, { Accept: 'text/event-stream' });
      try {
        assert.equal(stream.status, 200, stream.text().slice(0, 300));
        await stream.waitFor(/^retry: ?\d+$/m, 3000);
        // Two comment lines: heartbeats flow rather than one stuck in a buffer.
        await stream.waitFor(/^:.*\n(?:.*\n)*?:.*\n/m, SSE_SETTINGS.heartbeat * 1000 * 2 + 2000);
        const firstTwo = Date.now() - opened;
        assert.ok(firstTwo < SSE_SETTINGS.lifetime * 1000, `two heartbeats took ${firstTwo} ms`);
        const ended = await stream.ended(SSE_SETTINGS.lifetime * 1000 + 5000);
        const lasted = ended - opened;
        assert.ok(
          lasted >= SSE_SETTINGS.lifetime * 1000 - 500 && lasted < SSE_SETTINGS.lifetime * 1000 + 4000,
          `the stream lasted ${lasted} ms, lifetime ${SSE_SETTINGS.lifetime} s`,
        );
      } finally {
        stream.close();
      }
    });
  });
}
