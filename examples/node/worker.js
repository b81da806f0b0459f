#!/usr/bin/node
// examples/node/worker.js: an execguard worker in plain SQL, with node-postgres.
// It claims one execution at a time, sends its prompt to an OpenAI-compatible
// server while a heartbeat keeps the lease, and records the outcome; any number
// of workers, in any language, share the queue. Settings: examples/README.md.
'use strict';
const os = require('os');
const { Pool } = require('pg');

const env = process.env;
const WORKER = env.EXECGUARD_WORKER_ID || `node-${os.hostname()}-${process.pid}`;
const LEASE_S = Number(env.EXECGUARD_LEASE_SECONDS || 30);
const LEASE = `${LEASE_S} seconds`; // sent as text, cast to interval in SQL
const GRACE_MS = 1000 * Number(env.EXECGUARD_GRACE_SECONDS || 10);
const EXIT_WHEN_IDLE = process.argv.includes('--exit-when-idle') || env.EXECGUARD_EXIT_WHEN_IDLE === '1';
const list = (name) => (env[name] || '').split(',').map((s) => s.trim()).filter(Boolean);
const [REGIONS, MODELS] = ['EXECGUARD_REGIONS', 'EXECGUARD_MODELS'].map((v) => (list(v).length ? list(v) : null));

// A pool with default settings: each query may run on another connection, and
// idle ones are closed. No transaction ever spans a model call.
const pool = new Pool(env.EXECGUARD_DSN ? { connectionString: env.EXECGUARD_DSN } : {});
pool.on('error', (e) => log('idle connection lost', { error: e.message })); // else it kills the process

let stopping = false; // SIGTERM: claim nothing more
let inFlight = null; // the AbortController of the call in flight

const log = (event, fields = {}) =>
  console.error(`${WORKER}: ${event}`, ...Object.entries(fields).map(([k, v]) => `${k}=${v}`));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// One row of one statement. Retries while the database is unreachable (an
// error without a SQLSTATE, or class 08/57P): the pool opens a new connection,
// and the fencing token makes sending a write again safe.
async function one(sql, args) {
  for (let attempt = 1; ; attempt++) {
    try {
      return (await pool.query(sql, args)).rows[0];
    } catch (e) {
      const sqlError = /^[0-9A-Z]{5}$/.test(e.code || '') && !/^(08|57P)/.test(e.code);
      if (sqlError || attempt === 5) throw e;
      log('database unreachable, retrying', { error: e.message });
      await sleep(attempt * 1000);
    }
  }
}

async function callModel(ex, signal) {
  const p = ex.payload;
  const base = env.EXECGUARD_EXAMPLE_BASE_URL.replace('{region}', ex.region).replace(/\/$/, '');
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    signal,
    headers: {
      'Content-Type': 'application/json',
      // One key per grant: a provider that deduplicates sees a retry as new.
      'Idempotency-Key': `execguard-${ex.execution_id}-${ex.fencing_token}`,
      'X-Execguard-Worker': WORKER,
    },
    body: JSON.stringify({ ...p.params, model: p.model_id, stream: false, messages: [{ role: 'user', content: p.prompt }] }),
  });
  return outcomeOf(res.status, res.headers.get('retry-after'), await res.text());
}

// { result } or { failure: [error, retryable, retryAfter] }, in the runner's classes.
function outcomeOf(status, retryAfter, body) {
  if (status === 200) {
    try {
      const answer = JSON.parse(body);
      const choice = answer.choices[0];
      const text = choice.message.content.replaceAll('\0', '\ufffd'); // jsonb cannot hold U+0000
      return { result: { text, finish_reason: choice.finish_reason, usage: answer.usage, worker: WORKER } };
    } catch (e) {
      return { failure: [`permanent: malformed response: ${body.slice(0, 200)}`, false, null] };
    }
  }
  const cls = { 429: 'rate_limit', 408: 'timeout' }[status] || (status >= 500 ? 'server_error' : 'permanent');
  // A provider's Retry-After in seconds wins (at most a day, as the runner's:
  // fail_execution refuses over 30 days); else execguard's backoff (NULL).
  const wait = /^\d+$/.test(retryAfter || '') ? `${Math.min(Number(retryAfter), 86400)} seconds` : null;
  return { failure: [`${cls}: HTTP ${status}: ${body.slice(0, 300)}`, cls !== 'permanent', wait] };
}

// Renews the lease every lease/3, each time on whatever pool connection is
// free, and aborts the call when execguard says stop (job cancelled, claim
// taken over). Returns a function that stops it and waits for a beat in flight.
function heartbeat(ex, controller) {
  let timer;
  let beat = Promise.resolve();
  let stopped = false;
  const tick = async () => {
    try {
      const { ok } = await one('SELECT execguard.heartbeat($1, $2, $3::interval) AS ok', [ex.execution_id, ex.fencing_token, LEASE]);
      if (!ok && !stopped) {
        // false means stop; execution_state says why (cancelled, stale, ...).
        const sql = "SELECT coalesce(execguard.execution_state($1, $2), 'gone') AS state";
        return controller.abort((await one(sql, [ex.execution_id, ex.fencing_token])).state);
      }
    } catch (e) {
      log('heartbeat failed', { id: ex.execution_id, error: e.message }); // the lease outlives two misses
    }
    if (!stopped) timer = setTimeout(() => (beat = tick()), (LEASE_S * 1000) / 3);
  };
  timer = setTimeout(() => (beat = tick()), (LEASE_S * 1000) / 3);
  return () => ((stopped = true), clearTimeout(timer), beat);
}

async function execute(ex) {
  const { execution_id: id, fencing_token: token } = ex; // bigint arrives as a string: kept as is
  log('claimed', { id, token, attempt: ex.attempt, model: ex.payload.model_id, region: ex.region });
  const controller = (inFlight = new AbortController());
  const timeout = setTimeout(() => controller.abort('timeout'), 120000);
  const stopHeartbeat = heartbeat(ex, controller);
  let outcome;
  try {
    outcome = await callModel(ex, controller.signal);
  } catch (e) {
    const why = controller.signal.reason;
    outcome = { failure: [why === 'timeout' ? 'timeout: no answer in 120 s' : `network: ${e.message || e}`, true, null] };
  } finally {
    clearTimeout(timeout);
    inFlight = null;
    await stopHeartbeat();
  }
  const why = controller.signal.aborted ? controller.signal.reason : null;
  if (why === 'shutdown' && !outcome.result) {
    const { ok } = await one('SELECT execguard.release_execution($1, $2) AS ok', [id, token]);
    return log('released', { id, accepted: ok }); // gives the attempt back to the next worker
  }
  if (why && why !== 'shutdown' && why !== 'timeout') return log('stopped', { id, reason: why }); // write nothing
  if (outcome.result) {
    const { ok } = await one('SELECT execguard.complete_execution($1, $2, $3) AS ok', [id, token, outcome.result]);
    return log('completed', { id, token, accepted: ok });
  }
  const [error, retryable, retryAfter] = outcome.failure;
  const { state } = await one('SELECT execguard.fail_execution($1, $2, $3, retryable => $4, retry_after => $5::interval) AS state',
    [id, token, error, retryable, retryAfter]);
  log('failed', { id, outcome: state, error: error.slice(0, 80) });
}

async function main() {
  const stop = () => {
    stopping = true;
    if (inFlight) setTimeout((c) => c.abort('shutdown'), GRACE_MS, inFlight).unref();
  };
  process.on('SIGTERM', stop).on('SIGINT', stop);
  while (!stopping) {
    // track_owner => false: a pooled connection is not this worker's identity
    // (the pool closes and swaps connections at will), so rescue must rely on the lease.
    const ex = await one(`SELECT execution_id, fencing_token, attempt, region, payload FROM execguard.claim_next($1,
        max_claims => 1, lease => $2::interval, regions => $3::text[], models => $4::text[], track_owner => false)`,
      [WORKER, LEASE, REGIONS, MODELS]);
    if (ex) {
      await execute(ex);
      continue;
    }
    // Nothing due. Pending rows may still be backing off, and running ones may
    // come back if their worker dies: idle only when neither is left.
    const { left } = await one(`SELECT coalesce(sum(executions), 0)::int AS left
        FROM execguard.queue_summary() WHERE status IN ('pending', 'running')`);
    if (EXIT_WHEN_IDLE && left === 0) break;
    await sleep(500);
  }
  log('exiting');
  await pool.end();
}

main().catch((e) => {
  log('fatal', { error: e.stack || e });
  process.exit(1);
});
