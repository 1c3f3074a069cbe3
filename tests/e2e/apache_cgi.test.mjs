// The foundation contract through Apache httpd + mod_cgid, pgfeed as plain
// CGI, configured by apache/pgfeed-cgi.conf unchanged.
import { foundationSuite } from './lib/foundation.mjs';
import { SSE_SETTINGS, sseSuite } from './lib/sse_timing.mjs';
import { startApache } from './lib/servers.mjs';

const MAX_WAIT = 3;

foundationSuite('Apache CGI (apache/pgfeed-cgi.conf)', () =>
  startApache('cgi', { defines: { PGFEED_MAX_WAIT: MAX_WAIT } }), { maxWait: MAX_WAIT });

sseSuite('Apache CGI: SSE heartbeats and lifetime', () =>
  startApache('cgi', { defines: { PGFEED_HEARTBEAT: SSE_SETTINGS.heartbeat, PGFEED_SSE_LIFETIME: SSE_SETTINGS.lifetime } }));
