// www/ as the npm package users install: `npm pack` of www/, then
//  - the tarball's manifest and files (version = pgfeed --version),
//  - a scratch project that installs the tarball and bundles it with
//    esbuild, and type-checks a TypeScript consumer against its .d.ts,
//  - a plain <script type=module> importing the packed pgfeed.js,
//  - the React and Vue examples (www/examples/), built by their own
//    `npm run build` with the packed package as their `pgfeed` dependency,
// each running in headless Chromium against the real stack (the demo's
// Apache, pgfeed, PostgreSQL). The built bundles are served to the page by
// Playwright's routing under the Apache origin; /feed and /demo/orders are
// the real ones. npm packages other than pgfeed come from tests/node_modules
// (NODE_PATH): the test does not touch the network.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe } from 'node:test';

import { publish, sql } from '../e2e/lib/pg.mjs';
import { testEnv } from '../e2e/lib/env.mjs';
import { crashLines } from '../e2e/lib/servers.mjs';
import { loadDemoSchema, startDemoServer } from './demo_server.mjs';
import { insertOrder, launchChromium, pageCheck, recordErrors } from './pages.mjs';

const source = testEnv().sourceDir;
const testsModules = path.join(source, 'tests', 'node_modules');
const bin = path.join(testsModules, '.bin');

let server;
let browser;
let scratch;
let tarball;
/** Every page opened: its context and script errors. */
const opened = [];

/** Runs a command in dir with tests/node_modules on NODE_PATH and PATH. */
function run(cmd, args, dir) {
  try {
    return execFileSync(cmd, args, {
      cwd: dir,
      encoding: 'utf8',
      stdio: 'pipe',
      env: { ...process.env, NODE_PATH: testsModules, PATH: `${bin}:${process.env.PATH}`, npm_config_update_notifier: 'false' },
    });
  } catch (err) {
    throw new Error(`${cmd} ${args.join(' ')} (in ${dir}) failed:\n${err.stdout}${err.stderr}`);
  }
}

/** A scratch project: the tarball unpacked as node_modules/pgfeed, plus files. */
function project(name, files = {}) {
  const dir = path.join(scratch, name);
  fs.mkdirSync(path.join(dir, 'node_modules', 'pgfeed'), { recursive: true });
  run('tar', ['-xzf', tarball, '-C', path.join(dir, 'node_modules', 'pgfeed'), '--strip-components=1'], dir);
  for (const [file, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.writeFileSync(path.join(dir, file), text);
  }
  return dir;
}

/**
 * Opens url with some paths answered from files: {'/path': file}.
 * @returns {Promise<import('playwright-core').Page>}
 */
async function openPage(url, routes = {}) {
  const context = await browser.newContext();
  for (const [route, file] of Object.entries(routes)) {
    await context.route(`${server.base}${route}`, (r) => r.fulfill({ path: file, contentType: file.endsWith('.html') ? 'text/html' : 'text/javascript' }));
  }
  const page = await context.newPage();
  const streams = [];
  page.on('request', (req) => req.resourceType() === 'eventsource' && streams.push(new URL(req.url())));
  opened.push({ context, errors: recordErrors(page) });
  await page.goto(url);
  return Object.assign(page, { streams });
}

/** Rows the example shows, by id: {id: [item, quantity]}. */
function shownRows(page) {
  return page.$$eval('#rows tr', (trs) => Object.fromEntries(trs.map((tr) => [tr.dataset.id, [...tr.cells].slice(1).map((c) => c.textContent)])));
}

async function tableRows() {
  const out = await sql('SELECT id, item, quantity FROM demo.orders ORDER BY id');
  return Object.fromEntries(out.split('\n').filter(Boolean).map((l) => l.split('|')).map(([id, item, q]) => [id, [item, q]]));
}

/** Waits until the example's table shows exactly what demo.orders holds. */
async function waitRowsMatch(page) {
  const want = await tableRows();
  await page.waitForFunction((w) => {
    const got = Object.fromEntries([...document.querySelectorAll('#rows tr')].map((tr) => [tr.dataset.id, [...tr.cells].slice(1).map((c) => c.textContent)]));
    return JSON.stringify(got, Object.keys(got).sort()) === JSON.stringify(w, Object.keys(w).sort());
  }, want, { timeout: 10000 }).catch(async (err) => {
    assert.deepEqual(await shownRows(page), want, `the example's rows: ${err.message}`);
  });
}

describe('the npm package', () => {
  before(async () => {
    await loadDemoSchema();
    server = await startDemoServer({ defines: { PGFEED_HEARTBEAT: 3 } });
    browser = await launchChromium();
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'pgfeed-package-'));
    const out = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', scratch], path.join(source, 'www')));
    tarball = path.join(scratch, out[0].filename);
    globalThis.packed = out[0];
  });

  after(async () => {
    for (const { context } of opened) await context.close().catch(() => {});
    await browser?.close();
    if (server) {
      await server.stop();
      server.cleanup();
    }
    if (scratch && !process.env.PGFEED_E2E_KEEP) fs.rmSync(scratch, { recursive: true, force: true });
  });

  const check = pageCheck(() => opened, () => server);

  check('npm pack: a module with its types, licence and nothing else, versioned as the server', async () => {
    const { files, size, unpackedSize, filename } = globalThis.packed;
    assert.deepEqual(files.map((f) => f.path).sort(), ['LICENSE', 'README.md', 'package.json', 'pgfeed.d.ts', 'pgfeed.js']);
    const manifest = JSON.parse(fs.readFileSync(path.join(source, 'www', 'package.json'), 'utf8'));
    assert.equal(manifest.name, 'pgfeed');
    assert.equal(manifest.private, undefined);
    assert.equal(manifest.type, 'module');
    assert.equal(manifest.sideEffects, false);
    assert.equal(manifest.license, 'MIT');
    assert.deepEqual(manifest.exports['.'], { types: './pgfeed.d.ts', default: './pgfeed.js' });
    const serverVersion = execFileSync(testEnv().bin, ['--version'], { encoding: 'utf8' }).trim();
    assert.equal(`pgfeed ${manifest.version}`, serverVersion, 'the package and the server carry one version');
    process.stdout.write(`# ${filename}: ${size} bytes packed, ${unpackedSize} unpacked\n`);
  });

  check('a scratch project bundles the tarball with esbuild, type-checks against it, and follows a feed', async () => {
    const dir = project('bundled', {
      'package.json': JSON.stringify({ name: 'scratch', private: true, type: 'module', dependencies: { pgfeed: `file:${tarball}` } }),
      'app.ts': [
        "import { subscribe, FeedError, type FeedEvent, type FeedStatus } from 'pgfeed';",
        'const got: number[] = [];',
        "const feed = subscribe('/feed', 'orders', { onEvent: (e: FeedEvent) => { got.push(e.version); }, onError: (e: FeedError) => console.warn(e.status) });",
        'const status: FeedStatus = feed.status;',
        "// @ts-expect-error: not a transport: the types are real, not any",
        "if (got.length < 0) subscribe('/feed', 'orders', { transport: 'websocket' });",
        'Object.assign(window, { got, feed, status });',
        '',
      ].join('\n'),
      'tsconfig.json': JSON.stringify({ compilerOptions: { strict: true, module: 'esnext', moduleResolution: 'bundler', target: 'es2022', lib: ['es2022', 'dom'], noEmit: true } }),
      'index.html': '<!doctype html><title>bundled</title><script type="module" src="app.js"></script>',
    });
    run('tsc', ['-p', 'tsconfig.json'], dir);
    run('esbuild', ['app.ts', '--bundle', '--format=esm', '--outfile=dist/app.js'], dir);
    assert.ok(fs.readFileSync(path.join(dir, 'dist/app.js'), 'utf8').includes('pgfeed: no channel given'), 'the bundle contains the packed client');
    const page = await openPage(`${server.base}/scratch/index.html`, { '/scratch/index.html': path.join(dir, 'index.html'), '/scratch/app.js': path.join(dir, 'dist/app.js') });
    await page.waitForFunction(() => window.feed?.status === 'live', null, { timeout: 10000 });
    const id = await insertOrder();
    await page.waitForFunction(() => window.got.length === 1, null, { timeout: 10000 });
    assert.ok(id > 0);
  });

  check('a plain <script type=module> imports the packed pgfeed.js', async () => {
    const dir = project('plain', {
      'index.html': `<!doctype html><title>plain</title><script type="module">
        import { subscribe } from '/vendor/pgfeed.js';
        window.got = [];
        window.feed = subscribe('/feed', 'notifications', { onEvent: (e) => window.got.push(e.data.text) });
      </script>`,
    });
    const page = await openPage(`${server.base}/plain/index.html`, {
      '/plain/index.html': path.join(dir, 'index.html'),
      '/vendor/pgfeed.js': path.join(dir, 'node_modules/pgfeed/pgfeed.js'),
    });
    await page.waitForFunction(() => window.feed?.status === 'live', null, { timeout: 10000 });
    await publish('notifications', 'notice', { text: 'plain hello' });
    await page.waitForFunction(() => window.got.join() === 'plain hello', null, { timeout: 10000 });
  });

  for (const framework of ['react', 'vue']) {
    check(`the ${framework} example builds on the package and keeps its rows and badge live`, async () => {
      const example = path.join(source, 'www', 'examples', framework);
      const files = {};
      for (const rel of ['package.json', ...fs.readdirSync(path.join(example, 'src')).map((f) => `src/${f}`)]) {
        files[rel] = fs.readFileSync(path.join(example, rel));
      }
      const dir = project(framework, files);
      run('npm', ['run', '--silent', 'build'], dir);
      const page = await openPage(`${server.base}/examples/${framework}/`, { [`/examples/${framework}/dist/app.js`]: path.join(dir, 'dist/app.js') });
      await page.waitForFunction(() => document.getElementById('status')?.dataset.status === 'live', null, { timeout: 10000 });
      await waitRowsMatch(page);

      // Rows: insert, update, delete, each applied by id.
      const a = await insertOrder();
      const b = await insertOrder();
      await sql(`UPDATE demo.orders SET quantity = 42 WHERE id = ${a}`);
      await sql(`DELETE FROM demo.orders WHERE id = ${b}`);
      await waitRowsMatch(page);
      assert.equal((await shownRows(page))[a][1], '42');

      // Notifications: the badge counts what arrived since it was clicked.
      await publish('notifications', 'notice', { text: `${framework} one` });
      await publish('notifications', 'notice', { text: `${framework} two` });
      await page.waitForFunction(() => document.getElementById('badge').textContent === '2', null, { timeout: 10000 });
      assert.deepEqual(await page.$$eval('#notifications li', (lis) => lis.map((li) => li.textContent)), [`${framework} two`, `${framework} one`]);
      await page.click('#bell');
      await page.waitForFunction(() => document.getElementById('badge').hidden, null, { timeout: 5000 });
      await publish('notifications', 'notice', { text: `${framework} three` });
      await page.waitForFunction(() => document.getElementById('badge').textContent === '1', null, { timeout: 10000 });

      // Both subscriptions of the page ride one stream.
      const last = page.streams.at(-1);
      assert.deepEqual(last.searchParams.getAll('channel'), ['notifications', 'orders'], `the stream: ${last}`);
    });
  }

  check('no script errors on any page, and pgfeed logged no crash', async () => {
    assert.deepEqual(opened.flatMap((r) => r.errors), []);
    assert.deepEqual(crashLines(server.logs()), []);
  });
});
