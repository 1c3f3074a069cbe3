// @ts-check
/**
 * The README's React hook is the one the browser tests build and run
 * (www/examples/react/src/useLiveRows.js), character for character.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

test("README's useLiveRows hook is www/examples/react/src/useLiveRows.js", () => {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const hook = fs.readFileSync(path.join(root, 'www/examples/react/src/useLiveRows.js'), 'utf8');
  const blocks = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);
  const shown = blocks.find((b) => b.includes('export function useLiveRows'));
  assert.ok(shown, 'the README shows the hook');
  assert.equal(shown, hook);
});
