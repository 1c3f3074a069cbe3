// pg — the database side of the e2e tests, through psql.
//
// Events get into feeds the way applications put them there: SQL calls to
// pgfeed.publish and writes to tracked tables. psql reads the libpq settings
// ctest gives the test (PGHOST, PGPORT, PGUSER, PGDATABASE).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/**
 * Runs SQL (one or more statements, one transaction) and returns psql's
 * unaligned, tuples-only output: one line per row, columns split by '|'.
 * @param {string} text
 * @returns {Promise<string>}
 */
export function sql(text) {
  return new Promise((resolve, reject) => {
    execFile(
      'psql',
      ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', text],
      { env: process.env, timeout: 30000 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`psql failed: ${stderr.trim() || err.message}\nSQL: ${text}`));
        else resolve(stdout.trim());
      },
    );
  });
}

/** A SQL string literal. */
export function lit(value) {
  return `'${String(value).replaceAll("'", "''")}'`;
}

/**
 * A channel or table name no other test run uses: the database outlives a
 * run and ctest may run several e2e files at once.
 */
export function unique(prefix) {
  return `${prefix}_${process.pid}_${randomBytes(3).toString('hex')}`;
}

/** Publishes one event and returns its version. */
export async function publish(channel, type, data) {
  const out = await sql(
    `SELECT pgfeed.publish(${lit(channel)}, ${lit(type)}, ${lit(JSON.stringify(data))}::jsonb)`,
  );
  return Number(out);
}

/** Publishes events [{type, data}] in one transaction, in order. */
export async function publishMany(channel, events) {
  const calls = events.map(
    (e) => `SELECT pgfeed.publish(${lit(channel)}, ${lit(e.type)}, ${lit(JSON.stringify(e.data))}::jsonb);`,
  );
  await sql(calls.join('\n'));
}

/** The channel's {head, oldest} as stored, or null when it does not exist. */
export async function channelRow(channel) {
  const out = await sql(`SELECT head, oldest FROM pgfeed.channel WHERE name = ${lit(channel)}`);
  if (!out) return null;
  const [head, oldest] = out.split('|').map(Number);
  return { head, oldest };
}
