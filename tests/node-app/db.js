// Connections from phasekit's app contract: DATABASE_URL and REDIS_URL, nothing else.
"use strict";
const { Pool } = require("pg");
const { createClient } = require("redis");

function pool() {
  return new Pool({ connectionString: process.env.DATABASE_URL, max: 2, connectionTimeoutMillis: 5000 });
}

async function redis() {
  const client = createClient({ url: process.env.REDIS_URL, socket: { connectTimeout: 5000 } });
  client.on("error", (err) => console.error("redis:", err.message));
  await client.connect();
  return client;
}

module.exports = { pool, redis };
