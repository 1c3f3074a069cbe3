// The SQL API examples of README.md run as written on the test database:
// they create the tables they track. Run in one transaction that is rolled
// back, so they leave nothing behind.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { sql } from '../e2e/lib/pg.mjs';
import { testEnv } from '../e2e/lib/env.mjs';

test("README's SQL API examples run on a database with pgfeed installed", async () => {
  const readme = fs.readFileSync(path.join(testEnv().sourceDir, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## SQL API'), readme.indexOf('## Browser client'));
  const blocks = [...section.matchAll(/```sql\n([\s\S]*?)```/g)].map((m) => m[1]);
  // The examples, then the role model's grants (for the two application roles
  // it names, which the reader has and the test makes).
  assert.equal(blocks.length, 2, 'the examples and the grants');
  const [examples, grants] = blocks;
  const out = await sql(
    `BEGIN;\n${examples}\nSELECT 'read ' || count(*) FROM pgfeed.read('user:42', 0, 100);\n` +
      `CREATE ROLE app_owner; CREATE ROLE app_writer;\n${grants}\nROLLBACK;`,
  );
  assert.match(out, /read 1/, `the tracked insert reached channel user:42:\n${out}`);
});
