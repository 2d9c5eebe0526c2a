// `node server.js [HOST]`: the app listens on PORT (phasekit's contract) at HOST (default 0.0.0.0, as in a
// container; the tests pass 127.0.0.1). Configured as production apps are: only APP_HOSTNAME is served (anything
// else gets 400), plain HTTP is redirected to https unless the proxy says the visitor used https
// (X-Forwarded-Proto, trusted from the one proxy in front: Caddy), and BROKEN_HEALTH=1 makes the health route fail.
"use strict";
const express = require("express");
const { pool, redis } = require("./db");

const HOSTNAME = process.env.APP_HOSTNAME;
const HEALTH_PATH = process.env.HEALTH_PATH || "/healthz";
const BROKEN = process.env.BROKEN_HEALTH === "1";

async function main() {
  if (!HOSTNAME) throw new Error("APP_HOSTNAME is not set");
  const db = pool();
  const cache = await redis();
  const app = express();
  // Express's "trust proxy" hop count: X-Forwarded-Proto/-For are believed from the proxy in front only.
  app.set("trust proxy", 1);
  app.use((req, res, next) => {
    const host = (req.headers.host || "").replace(/:\d+$/, "");
    if (host !== HOSTNAME) return res.status(400).type("text").send(`host not allowed: ${host}\n`);
    if (!req.secure) return res.redirect(301, `https://${HOSTNAME}${req.originalUrl}`);
    next();
  });
  app.get(HEALTH_PATH, async (req, res) => {
    if (BROKEN) return res.status(500).json({ status: "broken" });
    try {
      await db.query("SELECT 1");
      // Counts the checks that passed, so a test can tell that a checker's request reached this route.
      await cache.incr("phasekit:health_checks");
      res.json({ status: "ok" });
    } catch (err) {
      res.status(503).json({ status: "database unavailable", error: err.message });
    }
  });
  app.get("/", async (req, res) => {
    const forwardedFor = req.headers["x-forwarded-for"] || "";
    const row = await db.query(
      "INSERT INTO visits (forwarded_for, client_ip) VALUES ($1, $2) RETURNING id", [forwardedFor, req.ip]);
    const visits = await cache.incr("phasekit:visits");
    res.json({ app: "node", visit_id: Number(row.rows[0].id), visits, forwarded_for: forwardedFor });
  });
  const port = Number(process.env.PORT);
  const server = app.listen(port, process.argv[2] || "0.0.0.0", () => console.log(`listening on ${port}`));
  const stop = () => server.close(async () => { await db.end(); await cache.quit(); process.exit(0); });
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
