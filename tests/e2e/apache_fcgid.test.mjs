// The foundation contract through Apache httpd + mod_fcgid, configured by
// apache/pgfeed-fcgid.conf unchanged (tunables by Define, PG* by environment).
import { foundationSuite } from './lib/foundation.mjs';
import { startApache } from './lib/servers.mjs';

const MAX_WAIT = 3;

foundationSuite('Apache mod_fcgid (apache/pgfeed-fcgid.conf)', () =>
  startApache('fcgid', { defines: { PGFEED_MAX_WAIT: MAX_WAIT } }), { maxWait: MAX_WAIT });
