// The release command (`node migrate.js`): applies each migration once, in order, in one transaction each.
"use strict";
const { pool } = require("./db");

const MIGRATIONS = [
  ["0001_visits", `CREATE TABLE visits (
     id bigserial PRIMARY KEY,
     created_at timestamptz NOT NULL DEFAULT now(),
     forwarded_for text NOT NULL DEFAULT '',
     client_ip text NOT NULL DEFAULT '')`],
];

async function main() {
  const db = pool();
  try {
    await db.query("CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())");
    for (const [name, sql] of MIGRATIONS) {
      const client = await db.connect();
      try {
        await client.query("BEGIN");
        const done = await client.query("SELECT 1 FROM schema_migrations WHERE name = $1", [name]);
        if (done.rowCount === 0) {
          await client.query(sql);
          await client.query("INSERT INTO schema_migrations (name) VALUES ($1)", [name]);
          console.log(`applied ${name}`);
        }
        await client.query("COMMIT");
      } catch (err) {
        await client.query("ROLLBACK");
        throw err;
      } finally {
        client.release();
      }
    }
  } finally {
    await db.end();
  }
}

main().catch((err) => {
  console.error(`migration failed: ${err.message}`);
  process.exit(1);
});
