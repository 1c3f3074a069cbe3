// The foundation contract through Apache httpd + mod_fcgid, configured by
// apache/pgfeed-fcgid.conf unchanged (tunables by Define, PG* by environment),
// then what holding requests costs there: mod_fcgid hands a process one
// request at a time, so concurrent long polls take a process each (relays to
// the hub; apache_fcgid_hub.test.mjs checks the hub itself).
import { foundationSuite } from './lib/foundation.mjs';
import { longPollSuite } from './lib/longpoll.mjs';
import { SSE_SETTINGS, sseSuite } from './lib/sse_timing.mjs';
import { startApache } from './lib/servers.mjs';

const MAX_WAIT = 3;

foundationSuite('Apache mod_fcgid (apache/pgfeed-fcgid.conf)', () =>
  startApache('fcgid', { defines: { PGFEED_MAX_WAIT: MAX_WAIT } }), { maxWait: MAX_WAIT });

// Eight stays under mod_fcgid's spawn rate limit (FcgidSpawnScoreUpLimit 10),
// so every poll gets its process at once.
longPollSuite('Apache mod_fcgid: each held long poll takes its own pgfeed relay', () => startApache('fcgid'), {
  n: 8,
  processes: 8,
  processPerRequest: true,
});

sseSuite('Apache mod_fcgid: SSE heartbeats and lifetime', () =>
  startApache('fcgid', { defines: { PGFEED_HEARTBEAT: SSE_SETTINGS.heartbeat, PGFEED_SSE_LIFETIME: SSE_SETTINGS.lifetime } }));
