// pgfeed behind lighttpd, which starts it itself (apache/lighttpd-pgfeed.conf,
// bin-path, one process): the foundation contract, then many concurrent long
// polls held by that one process.
import { foundationSuite } from './lib/foundation.mjs';
import { longPollSuite } from './lib/longpoll.mjs';
import { SSE_SETTINGS, sseSuite } from './lib/sse_timing.mjs';
import { startLighttpd } from './lib/servers.mjs';

const MAX_WAIT = 3;

foundationSuite('lighttpd (apache/lighttpd-pgfeed.conf)', () =>
  startLighttpd({ env: { PGFEED_MAX_WAIT: String(MAX_WAIT) } }), { maxWait: MAX_WAIT });

longPollSuite('lighttpd: long polls held by one pgfeed process', () => startLighttpd(), { n: 250 });

sseSuite('lighttpd: SSE heartbeats and lifetime', () =>
  startLighttpd({ env: { PGFEED_HEARTBEAT: String(SSE_SETTINGS.heartbeat), PGFEED_SSE_LIFETIME: String(SSE_SETTINGS.lifetime) } }));
