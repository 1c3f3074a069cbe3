// demo_server — the demo's Apache (www/demo/apache.conf, unchanged) on a free
// loopback port, for the browser tests: the page (www/), its backend
// /demo/orders (www/demo/orders.py) and /feed through
// apache/pgfeed-fcgid.conf, against ctest's throwaway cluster.
//
// httpd runs as the e2e harness runs servers (tests/e2e/lib/env.mjs): as
// root, directly as an unprivileged user. It starts in its own process group,
// so stopping it signals exactly that group: httpd, its children, the pgfeed
// processes mod_fcgid spawned and any CGI script still running.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { asServerUser, checkServerUserAccess, serverUser, testEnv } from '../e2e/lib/env.mjs';
import { request } from '../e2e/lib/http.mjs';
import { freePort, hubPidsUnder } from '../e2e/lib/servers.mjs';

/** Loads www/demo/schema.sql (idempotent) into the test database. */
export function loadDemoSchema() {
  const file = path.join(testEnv().sourceDir, 'www', 'demo', 'schema.sql');
  return new Promise((resolve, reject) => {
    execFile('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', file], { env: process.env, timeout: 30000 }, (err, _out, stderr) => {
      if (err) reject(new Error(`loading ${file} failed: ${stderr.trim() || err.message}`));
      else resolve();
    });
  });
}

/** pgrp (process group) and exe of a process, or null once it is gone. */
function processInfo(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    let exe = null;
    try {
      exe = fs.readlinkSync(`/proc/${pid}/exe`);
    } catch {
      // not ours to read, or a zombie
    }
    return { pgrp: Number(fields[2]), exe };
  } catch {
    return null;
  }
}

/** pids of the processes in process group pgrp. */
function groupMembers(pgrp) {
  return fs
    .readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .filter((pid) => processInfo(pid)?.pgrp === pgrp);
}

/**
 * Starts the demo's Apache.
 * @param {{defines?: Record<string, string|number>}} [options]
 *   defines: the snippet's tunables (PGFEED_HEARTBEAT, ...)
 * @returns {Promise<DemoServer>}
 */
export async function startDemoServer(options = {}) {
  const env = testEnv();
  checkServerUserAccess(env);
  const www = path.join(env.sourceDir, 'www');
  const bin = process.env.APACHE_BIN || (fs.existsSync('/usr/sbin/apache2') ? '/usr/sbin/apache2' : 'httpd');
  const modules = process.env.APACHE_MODULES_DIR || '/usr/lib/apache2/modules';
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pgfeed-browser-'));
  fs.mkdirSync(path.join(root, 'fcgid'));
  const user = serverUser();
  if (user) for (const p of [root, path.join(root, 'fcgid')]) fs.chownSync(p, user.uid, user.gid);
  fs.chmodSync(root, 0o755);

  const port = await freePort();
  const defines = {
    DEMO_ROOT: root,
    DEMO_LISTEN: `127.0.0.1:${port}`,
    DEMO_MODULES: modules,
    DEMO_WWW: www,
    DEMO_SNIPPET: path.join(env.sourceDir, 'apache', 'pgfeed-fcgid.conf'),
    PGFEED_BIN: env.bin,
    PGFEED_HUB_DIR: path.join(root, 'hub'), // the hub outlives httpd: keep it findable
    ...env.pg,
    ...options.defines,
  };
  const args = ['-DFOREGROUND', '-f', path.join(www, 'demo', 'apache.conf')];
  for (const [name, value] of Object.entries(defines)) args.push('-C', `Define ${name} "${value}"`);
  const out = fs.openSync(path.join(root, 'stderr.log'), 'a');
  const child = spawn(bin, args, {
    cwd: root,
    env: { PATH: process.env.PATH, LANG: 'C.UTF-8' },
    stdio: ['ignore', out, out],
    detached: true, // its own process group, see the banner
    ...asServerUser(),
  });
  fs.closeSync(out);
  child.unref();
  const server = new DemoServer(root, port, child, env.bin);

  const deadline = Date.now() + 20000;
  while (Date.now() < deadline && !server.exited) {
    try {
      const res = await request(server.base, '/', { timeoutMs: 2000 });
      if (res.status === 200) return server;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  const logs = server.logs();
  await server.stop();
  throw new Error(`demo Apache ${server.exited ? `exited (${JSON.stringify(server.exited)})` : 'did not answer within 20 s'}\n${logs}`);
}

class DemoServer {
  constructor(root, port, child, pgfeedBin) {
    this.root = root;
    this.port = port;
    this.base = `http://127.0.0.1:${port}`;
    this.child = child;
    this.pgrp = child.pid;
    this.pgfeedBin = fs.realpathSync(pgfeedBin);
    this.exited = null;
    child.on('exit', (code, signal) => {
      this.exited = { code, signal };
    });
  }

  /** pids of the pgfeed processes serving this server now: relays and their hub. */
  pgfeedPids() {
    // mod_fcgid's processes are relays (pgfeed-relay) to the hub, which is detached.
    const relay = path.join(path.dirname(this.pgfeedBin), 'pgfeed-relay');
    const own = groupMembers(this.pgrp).filter((pid) => [this.pgfeedBin, relay].includes(processInfo(pid)?.exe));
    return [...own, ...hubPidsUnder(`${this.root}/hub/`)];
  }

  /** The access log's lines (format "demo" of www/demo/apache.conf). */
  accessLines() {
    const file = path.join(this.root, 'access.log');
    return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
  }

  /** The error log (Apache, pgfeed's stderr, the CGI's) and httpd's own stderr. */
  logs() {
    let text = '';
    for (const name of ['error.log', 'stderr.log']) {
      const file = path.join(this.root, name);
      if (fs.existsSync(file)) text += `---- ${name} ----\n${fs.readFileSync(file, 'utf8').split('\n').slice(-80).join('\n')}\n`;
    }
    return text;
  }

  /** Stops httpd and everything in its process group; keeps the logs. */
  async stop() {
    const signal = (sig) => {
      try {
        process.kill(-this.pgrp, sig);
      } catch {
        // the group is empty
      }
    };
    // The hub is in no process group of httpd's (it is detached on purpose).
    const hubs = hubPidsUnder(`${this.root}/hub/`);
    signal('SIGTERM');
    for (const pid of hubs) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // gone
      }
    }
    // pgfeed answers held requests and exits within its 5 s grace period.
    for (let i = 0; i < 100 && groupMembers(this.pgrp).length; i++) await sleep(100);
    if (groupMembers(this.pgrp).length) {
      signal('SIGKILL');
      await sleep(200);
    }
  }

  /** Removes the temp dir unless PGFEED_E2E_KEEP is set. */
  cleanup() {
    if (process.env.PGFEED_E2E_KEEP) {
      process.stderr.write(`browser: kept ${this.root}\n`);
      return;
    }
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}
