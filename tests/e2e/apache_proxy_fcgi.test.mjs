// pgfeed as a FastCGI daemon (pgfeed --listen) behind Apache mod_proxy_fcgi
// (apache/pgfeed-proxy-fcgi.conf): the foundation contract, then many
// concurrent long polls held by the one daemon.
import { foundationSuite } from './lib/foundation.mjs';
import { longPollSuite } from './lib/longpoll.mjs';
import { SSE_SETTINGS, sseSuite } from './lib/sse_timing.mjs';
import { startApacheProxy } from './lib/servers.mjs';

const MAX_WAIT = 3;

foundationSuite('Apache mod_proxy_fcgi (apache/pgfeed-proxy-fcgi.conf)', () =>
  startApacheProxy({ daemonEnv: { PGFEED_MAX_WAIT: String(MAX_WAIT) } }), { maxWait: MAX_WAIT });

// Each held request also holds an Apache worker thread (tests/e2e/conf/apache.conf
// allows 256).
longPollSuite('Apache mod_proxy_fcgi: long polls held by one pgfeed daemon', () => startApacheProxy(), { n: 200 });

sseSuite('Apache mod_proxy_fcgi: SSE heartbeats and lifetime', () =>
  startApacheProxy({ daemonEnv: { PGFEED_HEARTBEAT: String(SSE_SETTINGS.heartbeat), PGFEED_SSE_LIFETIME: String(SSE_SETTINGS.lifetime) } }));
