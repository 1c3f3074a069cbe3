// pgfeed as a FastCGI daemon (pgfeed --listen) behind nginx
// (apache/nginx-pgfeed.conf): the foundation contract, then many concurrent
// long polls held by the one daemon.
import { foundationSuite } from './lib/foundation.mjs';
import { longPollSuite } from './lib/longpoll.mjs';
import { SSE_SETTINGS, sseSuite } from './lib/sse_timing.mjs';
import { startNginx } from './lib/servers.mjs';

const MAX_WAIT = 3;

foundationSuite('nginx (apache/nginx-pgfeed.conf)', () =>
  startNginx({ daemonEnv: { PGFEED_MAX_WAIT: String(MAX_WAIT) } }), { maxWait: MAX_WAIT });

longPollSuite('nginx: long polls held by one pgfeed daemon', () => startNginx(), { n: 250 });

sseSuite('nginx: SSE heartbeats and lifetime', () =>
  startNginx({ daemonEnv: { PGFEED_HEARTBEAT: String(SSE_SETTINGS.heartbeat), PGFEED_SSE_LIFETIME: String(SSE_SETTINGS.lifetime) } }));
