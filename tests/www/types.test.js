// @ts-check
/**
 * www/pgfeed.d.ts is what tsc generates from www/pgfeed.js's JSDoc
 * (www/tsconfig.json), so the types the package ships cannot drift from the
 * code; and the JSDoc itself type-checks under --strict (checkJs).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tsc = path.join(root, 'tests/node_modules/typescript/bin/tsc');

test('pgfeed.d.ts is generated from the JSDoc of pgfeed.js and the JSDoc type-checks', () => {
  assert.ok(fs.existsSync(tsc), `typescript is missing: npm ci --prefix tests (looked for ${tsc})`);
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'pgfeed-dts-'));
  try {
    execFileSync(process.execPath, [tsc, '-p', path.join(root, 'www/tsconfig.json'), '--outDir', out], { stdio: 'pipe' });
    const generated = fs.readFileSync(path.join(out, 'pgfeed.d.ts'), 'utf8');
    const shipped = fs.readFileSync(path.join(root, 'www/pgfeed.d.ts'), 'utf8');
    assert.ok(generated === shipped, 'www/pgfeed.d.ts differs from what tsc generates: run `npm run types --prefix www` (with tests/node_modules/.bin on PATH)');
  } catch (err) {
    const e = /** @type {any} */ (err);
    if (e.stdout) assert.fail(`tsc failed:\n${e.stdout}${e.stderr}`);
    throw err;
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});
