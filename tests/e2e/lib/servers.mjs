// servers — starts a real web server (or a pgfeed daemon) in front of pgfeed
// on a free loopback port, waits until it answers, and stops it again.
//
// Each server gets a private temp dir (ServerRoot, logs, pid, sockets) and a
// main config kept in tests/e2e/conf that includes the apache/ snippet under
// test unchanged; the snippet's variables (PGFEED_BIN, PG*, PGFEED_SOCKET)
// come from the environment the server starts with, as in production.
//
// Every process a server started is tracked through the process tree and
// ended by pid when the server stops, so no pgfeed outlives its test file.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { asServerUser, checkServerUserAccess, serverUser, testEnv } from './env.mjs';
import { request } from './http.mjs';

const E2E_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CONF_DIR = path.join(E2E_DIR, 'conf');

/**
 * The server of the enclosing describe(): started by start() before its first
 * test, stopped and cleaned up after its last (then onStop, if given, runs
 * first). Returns a getter, since the server exists only once before() ran.
 * With checkCrashes, the suite fails if pgfeed logged a crash, a leak or
 * undefined behaviour (sanitizer builds) meanwhile, whatever the answers were.
 * @param {() => Promise<Server>} start
 * @param {{onStop?: () => Promise<void>, checkCrashes?: boolean}} [options]
 * @returns {() => Server}
 */
export function serverFor(start, options = {}) {
  let server;
  before(async () => {
    server = await start();
  });
  after(async () => {
    await options.onStop?.();
    if (!server) return;
    await server.stop();
    const crashes = options.checkCrashes ? crashLines(server.logsSince()) : [];
    server.cleanup();
    if (crashes.length) throw new Error(`pgfeed logged a crash:\n${crashes.join('\n')}`);
  });
  return () => server;
}

/** Where the snippets live (apache/ at the top of the source tree). */
export function snippetPath(name) {
  return path.join(testEnv().sourceDir, 'apache', name);
}

/** A port nothing listens on right now (the kernel's pick). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** A temp dir owned by the server user, with the subdirectories servers expect. */
export function makeRoot(kind) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `pgfeed-e2e-${kind}-`));
  for (const sub of ['htdocs', 'fcgid', 'nginx']) fs.mkdirSync(path.join(root, sub));
  const user = serverUser();
  if (user) {
    for (const p of [root, ...fs.readdirSync(root).map((f) => path.join(root, f))]) {
      fs.chownSync(p, user.uid, user.gid);
    }
  }
  fs.chmodSync(root, 0o755);
  return root;
}

/** ppid of every process, read from /proc. */
function processTable() {
  const table = new Map();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // comm may contain spaces and parentheses: fields start after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // A zombie has exited; it lingers only until its parent reaps it, which an
      // init that reaps lazily does late (a CGI pgfeed outliving mod_cgid: 10 s).
      if (fields[0] === 'Z' || fields[0] === 'X') continue;
      table.set(Number(entry), { ppid: Number(fields[1]), start: fields[19] });
    } catch {
      // exited meanwhile
    }
  }
  return table;
}

/** pid and start time of pid and all its descendants. */
function processTree(pid) {
  const table = processTable();
  const found = new Map();
  const queue = [pid];
  while (queue.length) {
    const p = queue.shift();
    if (!table.has(p) || found.has(p)) continue;
    found.set(p, table.get(p).start);
    for (const [child, info] of table) if (info.ppid === p) queue.push(child);
  }
  return found;
}

/** The pids of tree still alive as the same processes (pid not reused). */
function stillAlive(tree) {
  const table = processTable();
  return [...tree].filter(([pid, start]) => table.get(pid)?.start === start).map(([pid]) => pid);
}

/**
 * pids of pgfeed hubs (--listen) whose socket path starts with prefix. Hubs
 * are detached from the server that started them on purpose, so they are
 * found by command line rather than in the server's process tree.
 */
export function hubPidsUnder(prefix) {
  const bin = fs.realpathSync(testEnv().bin);
  const pids = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (fs.readlinkSync(`/proc/${entry}/exe`) !== bin) continue;
      const args = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      const at = args.indexOf('--listen');
      if (at >= 0 && args[at + 1]?.startsWith(prefix)) pids.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

function kill(pid, signal) {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/**
 * A running server. Use start*() below to get one.
 */
class Server {
  constructor({ kind, root, port, child, logs, known = new Map() }) {
    this.kind = kind;
    this.root = root;
    this.port = port;
    this.base = `http://127.0.0.1:${port}`;
    this.child = child;
    this.logs = logs; // files worth showing on failure, most useful first
    this.known = known; // pids seen in this server's tree, with start times
    this.exited = null;
    this.stopped = false;
    child.on('exit', (code, signal) => {
      this.exited = { code, signal };
    });
  }

  /** Remembers the current process tree, so late-spawned pgfeeds get stopped too. */
  track() {
    if (this.exited) return;
    for (const [pid, start] of processTree(this.child.pid)) this.known.set(pid, start);
  }

  /** pids of pgfeed processes (pgfeed-relay included) in this server's tree right now. */
  pgfeedPids() {
    const bin = fs.realpathSync(testEnv().bin);
    const relay = path.join(path.dirname(bin), 'pgfeed-relay');
    const pids = [];
    for (const [pid] of processTree(this.child.pid)) {
      try {
        const exe = fs.readlinkSync(`/proc/${pid}/exe`);
        if (exe === bin || exe === relay) pids.push(pid);
      } catch {
        // gone, or not ours to read
      }
    }
    return pids;
  }

  /** pids of the hubs started for this server (sockets under hubDir, else its root). */
  hubPids() {
    return hubPidsUnder(`${this.hubDir ?? this.root}/`);
  }

  /** The size of each log now, to show only what a test added. */
  mark() {
    const sizes = {};
    for (const file of this.logs) sizes[file] = fs.existsSync(file) ? fs.statSync(file).size : 0;
    return sizes;
  }

  /** Log text written since mark (everything when mark is omitted). */
  logsSince(mark = {}) {
    let out = '';
    for (const file of this.logs) {
      if (!fs.existsSync(file)) continue;
      const text = fs.readFileSync(file).subarray(mark[file] ?? 0).toString('utf8');
      if (text.trim()) out += `---- ${path.basename(file)} (${this.kind}) ----\n${tail(text, 150)}\n`;
    }
    return out;
  }

  /** Stops the server and every process it started; keeps the logs readable. */
  async stop() {
    if (this.stopped) return;
    this.stopped = true;
    this.track();
    // Hubs outlive the server by design (they leave when idle); a test's must not.
    for (const pid of this.hubPids()) this.known.set(pid, processTable().get(pid)?.start);
    if (!this.exited) kill(this.child.pid, 'SIGTERM');
    for (const pid of this.hubPids()) kill(pid, 'SIGTERM');
    // pgfeed answers held requests and exits within its 5 s grace period.
    for (let i = 0; i < 100 && stillAlive(this.known).length; i++) await sleep(100);
    const left = stillAlive(this.known);
    for (const pid of left) kill(pid, 'SIGKILL');
    if (left.length) await sleep(200);
  }

  /** Removes the temp dir unless PGFEED_E2E_KEEP is set. */
  cleanup() {
    if (process.env.PGFEED_E2E_KEEP) {
      process.stderr.write(`e2e: kept ${this.root}\n`);
      return;
    }
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

function tail(text, lines) {
  const all = text.split('\n').map((l) => (l.length > 400 ? `${l.slice(0, 400)}[... ${l.length - 400} more]` : l));
  return all.length > lines ? [`[... ${all.length - lines} lines before]`, ...all.slice(-lines)].join('\n') : text;
}

/**
 * Spawns the server process as the server user, in its own process group,
 * stdout and stderr to files in root.
 */
function spawnServer(kind, root, command, args, env) {
  const out = fs.openSync(path.join(root, 'stdout.log'), 'a');
  const err = fs.openSync(path.join(root, 'stderr.log'), 'a');
  const child = spawn(command, args, {
    cwd: root,
    env: {
      PATH: process.env.PATH,
      LANG: 'C.UTF-8',
      // a sanitizer build of pgfeed reads these, when the server passes them on
      ...pick(process.env, ['ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS']),
      ...env,
    },
    stdio: ['ignore', out, err],
    detached: true,
    ...asServerUser(),
  });
  fs.closeSync(out);
  fs.closeSync(err);
  child.unref();
  return child;
}

function pick(obj, names) {
  const out = {};
  for (const n of names) if (obj[n] !== undefined) out[n] = obj[n];
  return out;
}

/**
 * Waits until the server answers HTTP at all (any status). Throws with the
 * logs when it exits or does not answer in time.
 */
async function waitReady(server, probePath = '/e2e-ready') {
  const deadline = Date.now() + 20000;
  let lastError;
  while (Date.now() < deadline) {
    if (server.exited) break;
    try {
      await request(server.base, probePath, { timeoutMs: 2000 });
      server.track();
      return server;
    } catch (err) {
      lastError = err;
    }
    await sleep(100);
  }
  const why = server.exited
    ? `exited (${JSON.stringify(server.exited)})`
    : `did not answer within 20 s (${lastError?.message})`;
  const logs = server.logsSince();
  await server.stop();
  throw new Error(`${server.kind} ${why}\n${logs}`);
}

/** Starts a server, retrying with another port if the picked one got taken. */
async function withFreePort(startOnce) {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      return await startOnce(port);
    } catch (err) {
      if (attempt < 3 && /Address already in use|could not bind|bind\(\) .*failed/i.test(err.message)) continue;
      throw err;
    }
  }
}

/**
 * The read rule every server gets unless a test sets its own: the generic
 * suites read channels of any name. pgfeed refuses every read by default, so
 * the harness says so explicitly; the authorization tests pass their rules.
 */
export const OPEN_READS = { PGFEED_ALLOW: '*' };

/** The PG* settings and pgfeed binary, as the snippets expect them. */
function snippetEnv(extra = {}) {
  const env = testEnv();
  return { PGFEED_BIN: env.bin, ...env.pg, ...extra };
}

const APACHE_MODES = {
  fcgid: { define: 'E2E_FCGID', snippet: 'pgfeed-fcgid.conf' },
  cgi: { define: 'E2E_CGID', snippet: 'pgfeed-cgi.conf' },
  'proxy-fcgi': { define: 'E2E_PROXY_FCGI', snippet: 'pgfeed-proxy-fcgi.conf' },
};

/**
 * Apache httpd with one of the apache/ snippets.
 * @param {'fcgid'|'cgi'|'proxy-fcgi'} mode
 * @param {{defines?: Record<string,string|number>, env?: Record<string,string>}} [options]
 *   defines: extra `Define NAME value` (the snippets' tunables); env: extra
 *   environment for httpd (e.g. PGFEED_SOCKET)
 */
export async function startApache(mode, options = {}) {
  const env = testEnv();
  checkServerUserAccess(env);
  const { define, snippet } = APACHE_MODES[mode];
  const bin = process.env.APACHE_BIN || (fs.existsSync('/usr/sbin/apache2') ? '/usr/sbin/apache2' : 'httpd');
  const modules = process.env.APACHE_MODULES_DIR || '/usr/lib/apache2/modules';
  return withFreePort(async (port) => {
    const root = options.root ?? makeRoot(`apache-${mode}`);
    const defines = { E2E_ROOT: root, E2E_PORT: port, E2E_MODULES: modules, E2E_SNIPPET: snippetPath(snippet), ...OPEN_READS, ...options.defines };
    // mod_fcgid's hub gets its socket directory in the test's own root.
    if (mode === 'fcgid' && !('PGFEED_HUB_DIR' in defines)) defines.PGFEED_HUB_DIR = path.join(root, 'hub');
    const args = ['-DFOREGROUND', '-f', path.join(CONF_DIR, 'apache.conf'), '-D', define];
    for (const [name, value] of Object.entries(defines)) args.push('-C', `Define ${name} ${value}`);
    const child = spawnServer(`apache ${mode}`, root, bin, args, snippetEnv(options.env));
    const logs = ['error.log', 'stderr.log', 'access.log'].map((f) => path.join(root, f));
    const server = new Server({ kind: `apache ${mode}`, root, port, child, logs });
    server.hubDir = defines.PGFEED_HUB_DIR;
    try {
      return await waitReady(server);
    } catch (err) {
      if (!options.root) server.cleanup();
      throw err;
    }
  });
}

/**
 * lighttpd with apache/lighttpd-pgfeed.conf: lighttpd spawns one pgfeed.
 * @param {{env?: Record<string,string>}} [options]  extra environment (PGFEED_*)
 */
export async function startLighttpd(options = {}) {
  const env = testEnv();
  checkServerUserAccess(env);
  const bin = process.env.LIGHTTPD_BIN || 'lighttpd';
  return withFreePort(async (port) => {
    const root = makeRoot('lighttpd');
    // The snippet's mod_auth needs a user file; nobody can log in with an empty one.
    const userfile = path.join(root, 'htpasswd');
    fs.writeFileSync(userfile, '');
    const child = spawnServer('lighttpd', root, bin, ['-D', '-f', path.join(CONF_DIR, 'lighttpd.conf')], {
      E2E_ROOT: root,
      E2E_PORT: String(port),
      E2E_SNIPPET: snippetPath('lighttpd-pgfeed.conf'),
      ...snippetEnv({ PGFEED_SOCKET: path.join(root, 'pgfeed.sock'), PGFEED_AUTH_USERFILE: userfile }),
      ...OPEN_READS,
      ...options.env,
    });
    const logs = ['error.log', 'stderr.log', 'stdout.log', 'access.log'].map((f) => path.join(root, f));
    const server = new Server({ kind: 'lighttpd', root, port, child, logs });
    try {
      return await waitReady(server);
    } catch (err) {
      server.cleanup();
      throw err;
    }
  });
}

/**
 * pgfeed as a FastCGI daemon on a Unix socket in root (for mod_proxy_fcgi and
 * nginx). Resolves once the socket accepts connections.
 * @param {string} root  temp dir of the server that will connect to it
 * @param {{env?: Record<string,string>, args?: string[]}} [options]
 */
export async function startDaemon(root, options = {}) {
  const env = testEnv();
  const socket = path.join(root, 'pgfeed.sock');
  const child = spawnServer('pgfeed', root, env.bin, ['--listen', socket, ...(options.args ?? [])], {
    ...env.pg,
    ...OPEN_READS,
    ...options.env,
  });
  let exited = null;
  child.on('exit', (code, signal) => {
    exited = { code, signal };
  });
  const deadline = Date.now() + 10000;
  while (Date.now() < deadline && !exited) {
    if (fs.existsSync(socket) && (await canConnect(socket))) {
      return { child, socket, pid: child.pid, logs: [path.join(root, 'stderr.log')] };
    }
    await sleep(50);
  }
  kill(child.pid, 'SIGKILL');
  const log = fs.existsSync(path.join(root, 'stderr.log')) ? fs.readFileSync(path.join(root, 'stderr.log'), 'utf8') : '';
  throw new Error(`pgfeed --listen ${socket} ${exited ? `exited (${JSON.stringify(exited)})` : 'did not listen within 10 s'}\n${log}`);
}

function canConnect(socket) {
  return new Promise((resolve) => {
    const c = net.connect(socket);
    c.on('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.on('error', () => resolve(false));
  });
}

/**
 * Apache mod_proxy_fcgi in front of a pgfeed daemon; stop() stops both.
 * @param {{defines?: Record<string,string|number>, daemonEnv?: Record<string,string>}} [options]
 */
export async function startApacheProxy(options = {}) {
  const root = makeRoot('apache-proxy-fcgi');
  let daemon;
  try {
    daemon = await startDaemon(root, { env: options.daemonEnv });
    const server = await startApache('proxy-fcgi', {
      root,
      defines: options.defines,
      env: { PGFEED_SOCKET: daemon.socket },
    });
    return attachDaemon(server, daemon);
  } catch (err) {
    if (daemon) kill(daemon.pid, 'SIGKILL');
    fs.rmSync(root, { recursive: true, force: true });
    throw err;
  }
}

/**
 * nginx in front of a pgfeed daemon; stop() stops both. nginx reads no
 * environment in its configuration, so the top-level file (listen port,
 * paths, the `upstream pgfeed` block) is written here; it includes
 * tests/e2e/conf/nginx-http.conf and the snippet unchanged.
 * @param {{daemonEnv?: Record<string,string>, authUrl?: string, snippet?: string, http?: (root: string) => string[]}} [options]
 *   authUrl: the login endpoint auth_request asks ($pgfeed_auth_url; none by default);
 *   snippet: the apache/ file included in the server block (nginx-pgfeed.conf);
 *   http: extra http-level lines the snippet asks its user for (cache path, maps)
 */
export async function startNginx(options = {}) {
  const env = testEnv();
  checkServerUserAccess(env);
  const bin = process.env.NGINX_BIN || 'nginx';
  const root = makeRoot('nginx');
  let daemon;
  try {
    daemon = await startDaemon(root, { env: options.daemonEnv });
    const server = await withFreePort(async (port) => {
      const conf = path.join(root, 'nginx.conf');
      fs.writeFileSync(
        conf,
        [
          '# written by tests/e2e/lib/servers.mjs for one test run',
          'daemon off;',
          'worker_processes 1;',
          `pid ${root}/nginx.pid;`,
          `error_log ${root}/error.log info;`,
          'worker_rlimit_nofile 16384;',
          'events { worker_connections 8192; }',
          'http {',
          `    include ${path.join(CONF_DIR, 'nginx-http.conf')};`,
          // The upstream the snippet passes to, as its comment asks (keepalive pool).
          `    upstream pgfeed { server unix:${daemon.socket}; keepalive 16; keepalive_timeout 60s; keepalive_requests 10000; }`,
          `    access_log ${root}/access.log;`,
          ...(options.http ? options.http(root) : []).map((line) => `    ${line}`),
          ...['client_body', 'fastcgi', 'proxy', 'uwsgi', 'scgi'].map((t) => `    ${t}_temp_path ${root}/nginx/${t};`),
          '    server {',
          `        listen 127.0.0.1:${port};`,
          '        server_name 127.0.0.1;',
          `        root ${root}/htdocs;`,
          `        set $pgfeed_auth_url "${options.authUrl ?? ''}";`,
          `        include ${snippetPath(options.snippet ?? 'nginx-pgfeed.conf')};`,
          '    }',
          '}',
          '',
        ].join('\n'),
      );
      const child = spawnServer('nginx', root, bin, ['-p', root, '-c', conf, '-e', `${root}/error.log`], {});
      const logs = ['error.log', 'stderr.log', 'access.log'].map((f) => path.join(root, f));
      return waitReady(new Server({ kind: 'nginx', root, port, child, logs }));
    });
    return attachDaemon(server, daemon);
  } catch (err) {
    if (daemon) kill(daemon.pid, 'SIGKILL');
    fs.rmSync(root, { recursive: true, force: true });
    throw err;
  }
}

/** Makes server's stop() and logs cover the daemon behind it too. */
function attachDaemon(server, daemon) {
  server.daemon = daemon;
  server.logs.push(...daemon.logs.filter((f) => !server.logs.includes(f)));
  const daemonTree = processTree(daemon.pid);
  const stopServer = server.stop.bind(server);
  server.stop = async () => {
    await stopServer();
    kill(daemon.pid, 'SIGTERM');
    for (let i = 0; i < 100 && stillAlive(daemonTree).length; i++) await sleep(100);
    for (const pid of stillAlive(daemonTree)) kill(pid, 'SIGKILL');
  };
  const pgfeedPids = server.pgfeedPids.bind(server);
  server.pgfeedPids = () => [...new Set([...pgfeedPids(), daemon.pid])];
  return server;
}

/**
 * Lines of a server log that mean pgfeed crashed, leaked or hit undefined
 * behaviour (sanitizer builds), whatever the HTTP answers looked like.
 */
export function crashLines(text) {
  return text
    .split('\n')
    .filter((line) =>
      /AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:|unexpected signal|signal 11|Segmentation fault|core dumped|child signalled|child exited: [1-9]/.test(
        line,
      ),
    );
}
