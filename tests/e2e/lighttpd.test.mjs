// pgfeed behind lighttpd, which starts it itself (apache/lighttpd-pgfeed.conf,
// bin-path, one process): the foundation contract, then many concurrent long
// polls held by that one process.
import { foundationSuite } from './lib/foundation.mjs';
import { longPollSuite } from './lib/longpoll.mjs';
import { startLighttpd } from './lib/servers.mjs';

const MAX_WAIT = 3;

foundationSuite('lighttpd (apache/lighttpd-pgfeed.conf)', () =>
  startLighttpd({ env: { PGFEED_MAX_WAIT: String(MAX_WAIT) } }), { maxWait: MAX_WAIT });

longPollSuite('lighttpd: long polls held by one pgfeed process', () => startLighttpd(), { n: 250 });
