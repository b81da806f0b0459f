/*
 * extension/pg/claims.cpp
 *
 * Claims, leases, fencing tokens, cancellation and retries.
 *
 * Every decision is one atomic statement whose WHERE clause re-checks the
 * state it acts on (under READ COMMITTED, PostgreSQL re-evaluates it on the
 * newest row version), so two callers can never both win: the unique key
 * decides creation, and the row lock plus the status/fencing_token
 * predicates decide every transition. No advisory locks: all of it works
 * behind a transaction-mode pooler.
 *
 * The hot paths (claim_next's scans of pending rows, complete_execution(s),
 * heartbeat) make the same decision without planning a statement, through
 * direct_writes.h; the statements below remain their definition, and run
 * instead whenever the direct writes do not apply.
 *
 * Outcomes of claim_execution: claimed and reclaimed are grants (execute);
 * everything else means "do not execute". Only a grant returns the fencing
 * token, which is the capability to heartbeat, complete, fail or release.
 */
/* PostgreSQL declares its API with C linkage only when asked to. */
extern "C"
{
#include "postgres.h"

#include "catalog/pg_type_d.h"
#include "commands/async.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "arguments.h"
#include "core_call.h"
#include "direct_writes.h"
#include "grant.h"
#include "key_lookup.h"
#include "owner.h"
#include "queue_rows.h"
#include "settings.h"
#include "spi_plans.h"
#include "srf.h"
#include "stats.h"
}

extern "C"
{
PG_FUNCTION_INFO_V1(execguard_claim_execution);
PG_FUNCTION_INFO_V1(execguard_claim_next);
PG_FUNCTION_INFO_V1(execguard_heartbeat);
PG_FUNCTION_INFO_V1(execguard_complete_execution);
PG_FUNCTION_INFO_V1(execguard_complete_executions);
PG_FUNCTION_INFO_V1(execguard_fail_execution);
PG_FUNCTION_INFO_V1(execguard_release_execution);
PG_FUNCTION_INFO_V1(execguard_cancel_job);
PG_FUNCTION_INFO_V1(execguard_retry_job);
}

#define MAX_RETRY_AFTER_SECONDS (30.0 * 24 * 3600)
#define MAX_CLAIMS_PER_CALL 10000
/*
 * claim_next's region and model filters: each row scanned is compared with
 * every entry (a parameter array is not hashed), so a filter this long is a
 * mistake, and a much longer one would make every claim scan slow.
 */
#define MAX_FILTER_ENTRIES 1000
/* A claim that keeps losing races this often reports it instead of spinning. */
#define MAX_CLAIM_ROUNDS 32

#define CLAIMED_COLUMNS \
	"e.execution_id, e.fencing_token, e.attempt, e.job_id, e.model_id, e.region, e.question_id, e.payload"
/* The same, as output columns of a CTE that returned CLAIMED_COLUMNS. */
#define CLAIMED_OUTPUT \
	"execution_id, fencing_token, attempt, job_id, model_id, region, question_id, payload"

/* Optional worker filters of claim_next: $4 regions, $5 models. */
#define CLAIM_FILTERS(E) \
	"AND ($4::text[] IS NULL OR " E ".region = ANY ($4)) AND ($5::text[] IS NULL OR " E ".model_id = ANY ($5)) "

/* ---------------------------------------------------------------------- */
/* Argument checks                                                        */
/* ---------------------------------------------------------------------- */

/* A text[] filter of claim_next, canonicalised like the stored keys. */
static Datum
key_filter_arg(FunctionCallInfo fcinfo, int argno, eg_key_part part, const char *name, bool *isnull)
{
	ArrayType  *array;
	Datum	   *elements;
	bool	   *nulls;
	int			n;

	*isnull = PG_ARGISNULL(argno);
	if (*isnull)
		return (Datum) 0;
	array = PG_GETARG_ARRAYTYPE_P(argno);
	deconstruct_array(array, TEXTOID, -1, false, TYPALIGN_INT, &elements, &nulls, &n);
	if (n > MAX_FILTER_ENTRIES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s has %d entries (at most %d)", name, n, MAX_FILTER_ENTRIES)));
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s[%d] must not be null", name, i)));
		elements[i] = PointerGetDatum(eg_canonical_key_part_text(part, DatumGetTextPP(elements[i])));
	}
	return PointerGetDatum(construct_array(elements, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* ---------------------------------------------------------------------- */
/* claim_execution                                                        */
/* ---------------------------------------------------------------------- */

/*
 * A key never submitted is created running, unless its job was cancelled.
 * FOR SHARE on the job row makes this wait for a concurrent cancel_job,
 * which locks that row before it cancels the job's executions (in a later
 * statement, so with a snapshot that sees this row once we commit). The
 * twin of eg_direct_insert_key, which runs instead unless direct writes
 * are off or do not apply (direct_writes.h).
 */
static EgStatement insert_key = {
	"WITH job AS (SELECT max_attempts, cancelled_at FROM execguard.jobs WHERE job_id = $1 FOR SHARE), "
	"created AS ("
	"  INSERT INTO execguard.executions AS e "
	"         (job_id, model_id, region, question_id, status, attempt, fencing_token, "
	"          worker, owner_pid, owner_backend_start, lease_expires_at, started_at, max_attempts) "
	"  SELECT $1, $2, $3, $4, 'running', 1, 1, $5, $6, $7, pg_catalog.now() + $8, pg_catalog.now(), "
	"         coalesce((SELECT max_attempts FROM job), 3) "
	"   WHERE NOT EXISTS (SELECT 1 FROM job WHERE cancelled_at IS NOT NULL) "
	"  ON CONFLICT (job_id, model_id, region, question_id) DO NOTHING "
	"  RETURNING execution_id, fencing_token, attempt, lease_expires_at), "
	"queued AS (INSERT INTO execguard.queue (execution_id, lease_expires_at) "
	"           SELECT execution_id, lease_expires_at FROM created) "
	"SELECT execution_id, fencing_token, attempt FROM created",
	8, {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT4OID, TIMESTAMPTZOID, INTERVALOID}, NULL
};

static EgStatement grant_pending = {
	"WITH granted AS ("
	"  UPDATE execguard.executions AS e SET " GRANT_SET("$2", "$3", "$4", "$5")
	"   WHERE execution_id = $1 AND status = 'pending' "
	"     AND (not_before IS NULL OR not_before <= pg_catalog.now()) "
	"  RETURNING execution_id, fencing_token, attempt, lease_expires_at), "
	"queued AS (" QUEUE_AS_RUNNING("granted") ") "
	"SELECT fencing_token, attempt FROM granted",
	5, {INT8OID, TEXTOID, INT4OID, TIMESTAMPTZOID, INTERVALOID}, NULL
};

/* $6: the token seen when the lease was found expired or the owner gone. */
static EgStatement grant_rescue = {
	"WITH granted AS ("
	"  UPDATE execguard.executions AS e SET " GRANT_SET("$2", "$3", "$4", "$5")
	"   WHERE execution_id = $1 AND status = 'running' AND fencing_token = $6 "
	"     AND attempt < max_attempts "
	"  RETURNING execution_id, fencing_token, attempt, lease_expires_at), "
	"queued AS (" QUEUE_AS_RUNNING("granted") ") "
	"SELECT fencing_token, attempt FROM granted",
	6, {INT8OID, TEXTOID, INT4OID, TIMESTAMPTZOID, INTERVALOID, INT8OID}, NULL
};

/* A running row whose last allowed attempt lost its lease ends failed. */
static EgStatement fail_exhausted_one = {
	"WITH failed AS ("
	"  UPDATE execguard.executions SET status = 'failed', finished_at = pg_catalog.now(), "
	"         error = 'lease lost on the last allowed attempt', "
	"         owner_pid = NULL, owner_backend_start = NULL "
	"   WHERE execution_id = $1 AND status = 'running' AND fencing_token = $2 "
	"     AND attempt >= max_attempts "
	"  RETURNING execution_id), "
	"dequeued AS (" DEQUEUE("failed") ") "
	"SELECT 1 FROM failed",
	2, {INT8OID, INT8OID}, NULL
};

static EgStatement job_cancelled = {
	"SELECT 1 FROM execguard.jobs WHERE job_id = $1 AND cancelled_at IS NOT NULL",
	1, {TEXTOID}, NULL
};

typedef struct ClaimResult
{
	const char *outcome;
	bool		has_row;
	int64		execution_id;
	bool		granted;
	int64		fencing_token;
	int32		attempt;
} ClaimResult;

static void
claimed_new(ClaimResult *out, int64 execution_id, int64 fencing_token, int32 attempt)
{
	out->outcome = "claimed";
	out->has_row = true;
	out->granted = true;
	out->execution_id = execution_id;
	out->fencing_token = fencing_token;
	out->attempt = attempt;
	eg_count(EG_CLAIMS_CLAIMED, 1);
}

static void
cancelled_new(ClaimResult *out)
{
	out->outcome = "cancelled";
	eg_count(EG_CLAIMS_CANCELLED, 1);
}

/*
 * Creates a key never seen, running for this claim, unless its job is
 * cancelled: by direct writes (eg_direct_insert_key), or by insert_key
 * where they do not apply. False when another transaction created the key
 * first; else *out holds the outcome, counted.
 */
static bool
create_key(Datum *key, Datum worker, bool worker_null, Datum owner_pid, Datum owner_start, char pid_null,
		   char start_null, Datum lease, ClaimResult *out, bool *spi)
{
	EgWriter	writer;

	if (eg_writer_begin(&writer))
	{
		EgGrant		grant;
		EgInsertResult result;
		int64		execution_id;

		grant.worker = worker;
		grant.worker_null = worker_null;
		grant.owner_pid = owner_pid;
		grant.owner_backend_start = owner_start;
		grant.owner_null = pid_null == 'n';
		grant.lease_expires_at = eg_lease_end(lease);
		result = eg_direct_insert_key(&writer, key, &grant, &execution_id);
		eg_writer_end(&writer);
		switch (result)
		{
			case EG_INSERT_DONE:
				claimed_new(out, execution_id, 1, 1);
				return true;
			case EG_INSERT_EXISTS:
				return false;
			case EG_INSERT_JOB_CANCELLED:
				cancelled_new(out);
				return true;
			case EG_INSERT_USE_SQL:
				break;
		}
	}

	{
		Datum		values[8] = {key[0], key[1], key[2], key[3], worker, owner_pid, owner_start, lease};
		char		nulls[9] = {' ', ' ', ' ', ' ', worker_null ? 'n' : ' ', pid_null, start_null, ' ', '\0'};

		eg_connect_spi(spi);
		if (eg_execute(&insert_key, values, nulls, 0) == 1)
		{
			claimed_new(out, DatumGetInt64(eg_result_not_null(0, 1)), DatumGetInt64(eg_result_not_null(0, 2)),
						DatumGetInt32(eg_result_not_null(0, 3)));
			return true;
		}
		if (eg_execute(&job_cancelled, key, NULL, 0) > 0)
		{
			cancelled_new(out);
			return true;
		}
	}
	return false;
}

/*
 * Decides one claim. Each round reads the key's row (eg_lookup_key) and
 * then runs the one statement that acts on what it saw; the statement
 * re-checks that state, and when it finds the row changed (a concurrent
 * claim won) the next round reads again. *spi says whether SPI was
 * connected, for the caller to finish.
 */
static void
claim_key(Datum *key, Datum worker, bool worker_null, Datum lease, bool track_owner, ClaimResult *out,
		  bool *spi)
{
	Datum		owner_pid;
	Datum		owner_start;
	char		pid_null;
	char		start_null;

	eg_owner_values(track_owner, &owner_pid, &owner_start, &pid_null, &start_null);

	for (int round = 0; round < MAX_CLAIM_ROUNDS; round++)
	{
		EgKeyRow	row;
		bool		owner_gone;

		if (!eg_lookup_key(key, &row))
		{
			if (create_key(key, worker, worker_null, owner_pid, owner_start, pid_null, start_null, lease, out,
						   spi))
				return;
			/* Another session created the key first: decide on its row. */
			continue;
		}

		out->has_row = true;
		out->execution_id = row.execution_id;
		out->attempt = row.attempt;

		switch (row.status)
		{
			case EG_STATUS_COMPLETED:
				out->outcome = "completed";
				eg_count(EG_CLAIMS_COMPLETED, 1);
				return;
			case EG_STATUS_CANCELLED:
				out->outcome = "cancelled";
				eg_count(EG_CLAIMS_CANCELLED, 1);
				return;
			case EG_STATUS_FAILED:
				out->outcome = "failed";
				eg_count(EG_CLAIMS_FAILED, 1);
				return;
			case EG_STATUS_PENDING:
				if (row.in_backoff)
				{
					out->outcome = "backoff";
					eg_count(EG_CLAIMS_BACKOFF, 1);
					return;
				}
				{
					Datum		values[5] = {Int64GetDatum(row.execution_id), worker, owner_pid, owner_start, lease};
					char		nulls[6] = {' ', worker_null ? 'n' : ' ', pid_null, start_null, ' ', '\0'};

					eg_connect_spi(spi);
					if (eg_execute(&grant_pending, values, nulls, 0) == 1)
					{
						out->outcome = "claimed";
						out->granted = true;
						out->fencing_token = DatumGetInt64(eg_result_not_null(0, 1));
						out->attempt = DatumGetInt32(eg_result_not_null(0, 2));
						eg_count(EG_CLAIMS_CLAIMED, 1);
						return;
					}
				}
				continue;
			case EG_STATUS_RUNNING:
				break;
		}

		/*
		 * running: a duplicate, unless the lease expired or the owner is gone
		 * (marked by a claim_next sweep with lease '-infinity', or found dead
		 * here).
		 */
		owner_gone = row.marked_owner_gone;
		if (!row.lease_expired && row.has_owner && !eg_owner_alive(row.owner_pid, row.owner_backend_start))
			owner_gone = true;
		if (!row.lease_expired && !owner_gone)
		{
			out->outcome = "running";
			eg_count(EG_CLAIMS_RUNNING, 1);
			return;
		}
		if (row.attempt >= row.max_attempts)
		{
			Datum		values[2] = {Int64GetDatum(row.execution_id), Int64GetDatum(row.fencing_token)};

			eg_connect_spi(spi);
			if (eg_execute(&fail_exhausted_one, values, NULL, 0) == 1)
			{
				out->outcome = "failed";
				eg_count(EG_EXECUTIONS_FAILED, 1);
				eg_count(EG_CLAIMS_FAILED, 1);
				return;
			}
			continue;
		}
		{
			Datum		values[6] = {Int64GetDatum(row.execution_id), worker, owner_pid, owner_start, lease,
			Int64GetDatum(row.fencing_token)};
			char		nulls[7] = {' ', worker_null ? 'n' : ' ', pid_null, start_null, ' ', ' ', '\0'};

			eg_connect_spi(spi);
			if (eg_execute(&grant_rescue, values, nulls, 0) == 1)
			{
				out->outcome = "reclaimed";
				out->granted = true;
				out->fencing_token = DatumGetInt64(eg_result_not_null(0, 1));
				out->attempt = DatumGetInt32(eg_result_not_null(0, 2));
				eg_count(EG_CLAIMS_RECLAIMED, 1);
				eg_count(owner_gone ? EG_LEASES_RESCUED_OWNER_GONE : EG_LEASES_RESCUED_EXPIRED, 1);
				return;
			}
		}
	}
	ereport(ERROR,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 errmsg("could not claim the execution: its row kept changing under concurrent claims"),
			 errhint("Retry the call.")));
}

/*
 * claim_execution(job_id, model_id, region, question_id, worker, lease,
 * track_owner) RETURNS execguard.claim
 */
extern "C" Datum
execguard_claim_execution(PG_FUNCTION_ARGS)
{
	Datum		key[4];
	Datum		worker;
	bool		worker_null;
	Datum		lease;
	bool		track_owner;
	ClaimResult result = {NULL, false, 0, false, 0, 0};
	bool		spi = false;
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	eg_require_schema();
	key[0] = eg_key_arg(fcinfo, 0, EG_KEY_JOB_ID, "job_id");
	key[1] = eg_key_arg(fcinfo, 1, EG_KEY_MODEL_ID, "model_id");
	key[2] = eg_key_arg(fcinfo, 2, EG_KEY_REGION, "region");
	key[3] = eg_key_arg(fcinfo, 3, EG_KEY_QUESTION_ID, "question_id");
	worker = eg_worker_arg(fcinfo, 4, &worker_null);
	lease = eg_lease_arg(fcinfo, 5);
	track_owner = eg_track_owner_arg(fcinfo, 6);

	claim_key(key, worker, worker_null, lease, track_owner, &result, &spi);
	if (spi)
		SPI_finish();

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "claim_execution must return a composite type");
	values[0] = CStringGetTextDatum(result.outcome);
	values[1] = Int64GetDatum(result.execution_id);
	nulls[1] = !result.has_row;
	/* The token is the capability to write: only the grantee gets it. */
	values[2] = Int64GetDatum(result.fencing_token);
	nulls[2] = !result.granted;
	values[3] = Int32GetDatum(result.attempt);
	nulls[3] = !result.has_row;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/* ---------------------------------------------------------------------- */
/* claim_next                                                             */
/* ---------------------------------------------------------------------- */

/* Owners of running claims, to check for dead ones. */
static EgStatement running_owners = {
	"SELECT DISTINCT o.owner_pid, o.owner_backend_start "
	"  FROM execguard.queue AS q, "
	"       LATERAL (SELECT e.owner_pid, e.owner_backend_start FROM execguard.executions AS e "
	"                 WHERE e.execution_id = q.execution_id AND e.status = 'running' "
	"                   AND e.owner_pid IS NOT NULL AND e.lease_expires_at > '-infinity' "
	"                OFFSET 0) AS o "
	" WHERE q.lease_expires_at > '-infinity'",
	0, {InvalidOid}, NULL
};

/* Makes a dead owner's claims due for rescue: '-infinity' marks the reason. */
static EgStatement mark_owner_gone = {
	"WITH marked AS ("
	"  UPDATE execguard.executions AS e SET lease_expires_at = '-infinity' "
	"   WHERE e.execution_id = ANY (ARRAY(SELECT q.execution_id FROM execguard.queue AS q "
	"                                      WHERE q.lease_expires_at > '-infinity')) "
	"     AND e.status = 'running' AND e.owner_pid = $1 AND e.owner_backend_start = $2 "
	"     AND e.lease_expires_at > '-infinity' "
	"  RETURNING e.execution_id, e.lease_expires_at) "
	QUEUE_AS_RUNNING("marked"),
	2, {INT4OID, TIMESTAMPTZOID}, NULL
};

/*
 * claim_next's rescue pass in one statement (one executor start, one
 * snapshot):
 *
 *   exhausted  expired claims on their last allowed attempt end failed;
 *   expired    running rows whose lease expired, dead owners ('-infinity')
 *              first, on attempts left, at most $2;
 *   rescued    those granted again;
 *   queued     the queue rows of the rescued, dequeued those failed.
 *
 * $1 worker, $2 limit, $3 lease, $4 regions, $5 models, $6 owner pid,
 * $7 owner start. Output: the claimed columns, whether the owner was gone,
 * and what the row is (ROW_*), with one marker row per exhausted execution.
 * Due pending rows are claimed after it, by the busy path's own means
 * (claim_pending_rows).
 *
 * Candidates are found through execguard.queue (its partial indexes on
 * pending rows by id and running rows by lease), in index order, and each
 * is decided on the execution's row by a scalar subquery that locks it
 * (FOR UPDATE SKIP LOCKED, re-checked on the newest version) if it
 * qualifies: one primary key probe per candidate, and the scan stops at
 * the LIMIT. Never a join: the statement is prepared once and runs with a
 * generic plan, which cannot know $2 and assumes a LIMIT of 10% of the
 * table, and a join then turns into a hash join over a sequential scan of
 * every execution, completed ones included. For the same reason the
 * updates find their rows through "execution_id = ANY (ARRAY(...))", which
 * gives the planner an index condition whatever the estimate. The two
 * updates touch disjoint rows (by attempt), as data-modifying CTEs must.
 *
 * A candidate that a concurrent transaction changed after the snapshot is
 * re-checked by EvalPlanQual, which starts a copy of the whole statement's
 * plan: cheap here, where such a race is rare, and ruinous in a statement
 * that races other claimers for every pending row (profiled under 8
 * clients: 42% of all CPU time), which is why pending rows are not claimed
 * in this one.
 */
#define ROW_RESCUED 1
#define ROW_CLAIMED 2
#define ROW_FAILED 3
#define CS_(x) #x
#define CS(x) CS_(x)

/*
 * "FROM ... WHERE ..." of the queue rows whose execution is running with an
 * expired lease and meets COND, locked unless another transaction holds it.
 */
#define EXPIRED_ROWS(COND) \
	"FROM execguard.queue AS q " \
	"WHERE q.lease_expires_at < pg_catalog.now() " \
	"  AND (SELECT true FROM execguard.executions AS e " \
	"        WHERE e.execution_id = q.execution_id AND e.status = 'running' " \
	"          AND e.lease_expires_at < pg_catalog.now() " COND \
	"          FOR UPDATE OF e SKIP LOCKED) "

/* The same for due pending rows meeting claim_next's filters. */
#define DUE_PENDING_ROWS(AFTER) \
	"FROM execguard.queue AS q " \
	"WHERE q.lease_expires_at IS NULL " AFTER \
	"  AND (SELECT true FROM execguard.executions AS e " \
	"        WHERE e.execution_id = q.execution_id AND e.status = 'pending' " \
	"          AND (e.not_before IS NULL OR e.not_before <= pg_catalog.now()) " CLAIM_FILTERS("e") \
	"          FOR UPDATE OF e SKIP LOCKED) "

static EgStatement rescue_statement = {
	"WITH exhausted AS ("
	"  UPDATE execguard.executions SET status = 'failed', finished_at = pg_catalog.now(), "
	"         error = 'lease lost on the last allowed attempt', "
	"         owner_pid = NULL, owner_backend_start = NULL "
	"   WHERE execution_id = ANY (ARRAY("
	"           SELECT q.execution_id " EXPIRED_ROWS("AND e.attempt >= e.max_attempts") ")) "
	"  RETURNING execution_id), "
	"expired AS MATERIALIZED ("
	"  SELECT q.execution_id, q.lease_expires_at = '-infinity' AS owner_gone "
	EXPIRED_ROWS("AND e.attempt < e.max_attempts " CLAIM_FILTERS("e"))
	"   ORDER BY q.lease_expires_at LIMIT $2), "
	"rescued AS ("
	"  UPDATE execguard.executions AS e SET " GRANT_SET("$1", "$6", "$7", "$3")
	"    FROM expired AS x "
	"   WHERE e.execution_id = ANY (ARRAY(SELECT execution_id FROM expired)) "
	"     AND e.execution_id = x.execution_id "
	"  RETURNING " CLAIMED_COLUMNS ", x.owner_gone, e.lease_expires_at), "
	"queued AS (" QUEUE_AS_RUNNING("rescued") "), "
	"dequeued AS (" DEQUEUE("exhausted") ") "
	"SELECT " CLAIMED_OUTPUT ", owner_gone, " CS(ROW_RESCUED) " FROM rescued "
	"UNION ALL SELECT NULL::bigint, NULL::bigint, NULL::int, NULL::text, NULL::text, NULL::text, "
	"                 NULL::text, NULL::jsonb, false, " CS(ROW_FAILED) " FROM exhausted",
	7, {TEXTOID, INT4OID, INTERVALOID, TEXTARRAYOID, TEXTARRAYOID, INT4OID, TIMESTAMPTZOID}, NULL
};

/*
 * Due pending rows after row $8, oldest first, when direct writes do not
 * apply: the twin of eg_direct_claim_pending. The parameters of
 * rescue_statement plus $8, and its output columns.
 */
static EgStatement claim_pending_statement = {
	"WITH pending AS ("
	"  UPDATE execguard.executions AS e SET " GRANT_SET("$1", "$6", "$7", "$3")
	"   WHERE e.execution_id = ANY (ARRAY("
	"           SELECT q.execution_id " DUE_PENDING_ROWS("AND q.execution_id > $8 ")
	"            ORDER BY q.execution_id LIMIT $2)) "
	"     AND e.status = 'pending' "
	"  RETURNING " CLAIMED_COLUMNS ", e.lease_expires_at), "
	"queued AS (" QUEUE_AS_RUNNING("pending") ") "
	"SELECT " CLAIMED_OUTPUT ", false, " CS(ROW_CLAIMED) " FROM pending",
	8, {TEXTOID, INT4OID, INTERVALOID, TEXTARRAYOID, TEXTARRAYOID, INT4OID, TIMESTAMPTZOID, INT8OID}, NULL
};

/*
 * Rescues (expired leases, dead owners) and the failing of exhausted claims
 * run in a session's calls at least every execguard.rescue_interval, and in
 * every call whose pending rows did not fill max_claims, so an idle or
 * starving worker rescues at once and a busy one within the interval.
 */
static TimestampTz last_rescue_pass = 0;

/*
 * Where this session's busy path starts its scan of pending rows: after
 * the newest row it claimed (0: from the oldest). Every row claimed since
 * the last vacuum leaves a dead entry at the head of the partial index on
 * pending rows, and a scan from the oldest pending row walks all of them
 * on every call: single claims lost half their throughput after 500,000
 * executions of churn, and with the hint 16% at most (docs/benchmarks.md).
 * Rows that become due below the hint (released, retried, backoff over, or
 * inserted by a transaction that committed late) are found by the rescue pass,
 * which scans from the oldest row at least every rescue_interval and in
 * every call the busy path does not fill. The session's own release, fail
 * and retry_job reset the hint, so its next call starts from the oldest.
 * The hint belongs to the filter it was earned with: a call with other
 * regions or models starts from the oldest row (filter_fingerprint). Only
 * where the scan starts depends on it; what may be claimed does not.
 */
static int64 pending_scan_after = 0;

/*
 * The regions and models filter of the call that set pending_scan_after,
 * as a hash of the canonical arrays. A collision can only keep a hint that
 * should have been dropped, which delays rows below it until the next
 * rescue pass, as for any row below the hint.
 */
static uint32 pending_scan_filter = 0;

static uint32
filter_fingerprint(Datum regions, bool regions_null, Datum models, bool models_null)
{
	uint32		hash = regions_null ? 0x9e3779b9 : 0x7f4a7c15;

	if (!regions_null)
		hash = hash_combine(hash, hash_bytes((const unsigned char *) DatumGetPointer(regions),
											 (int) VARSIZE(DatumGetPointer(regions))));
	hash = hash_combine(hash, models_null ? 0x85ebca6b : 0xc2b2ae35);
	if (!models_null)
		hash = hash_combine(hash, hash_bytes((const unsigned char *) DatumGetPointer(models),
											 (int) VARSIZE(DatumGetPointer(models))));
	return hash;
}

/* A regions or models argument of claim_next (canonical text[]) for direct writes. */
static void
key_filter(Datum array, bool isnull, EgKeyFilter *filter)
{
	filter->any = isnull;
	filter->elements = NULL;
	filter->n = 0;
	if (!isnull)
		deconstruct_array(DatumGetArrayTypeP(array), TEXTOID, -1, false, TYPALIGN_INT, &filter->elements, NULL,
						  &filter->n);
}

/*
 * Marks the running claims of owners that are gone; see owner.h. Connects
 * SPI (eg_connect_spi) only when a sweep is due.
 */
static void
sweep_dead_owners(bool *spi)
{
	uint64		epoch;
	uint64		n;
	int32	   *pids;
	TimestampTz *starts;
	int			dead = 0;

	if (!eg_owner_sweep_due(&epoch))
		return;

	eg_connect_spi(spi);
	n = eg_execute(&running_owners, NULL, NULL, 0);
	pids = (int32 *) palloc(sizeof(int32) * (n + 1));
	starts = (TimestampTz *) palloc(sizeof(TimestampTz) * (n + 1));
	for (uint64 i = 0; i < n; i++)
	{
		int32		pid = DatumGetInt32(eg_result_not_null(i, 1));
		TimestampTz start = DatumGetTimestampTz(eg_result_not_null(i, 2));

		if (!eg_owner_alive(pid, start))
		{
			pids[dead] = pid;
			starts[dead] = start;
			dead++;
		}
	}
	for (int i = 0; i < dead; i++)
	{
		Datum		values[2] = {Int32GetDatum(pids[i]), TimestampTzGetDatum(starts[i])};

		eg_execute(&mark_owner_gone, values, NULL, 0);
	}
	eg_owner_sweep_done(epoch);
}

/* Outcome of one claim_next call, for the counters. */
typedef struct ClaimNextCounts
{
	uint64		claimed;
	uint64		rescued;
	uint64		owner_gone;
	uint64		failed;
	int64		newest_claimed;	/* highest execution_id claimed pending */
} ClaimNextCounts;

/* Appends the granted rows of rescue_statement or claim_pending_statement to the result set. */
static void
emit_claimed(ReturnSetInfo *rsinfo, uint64 n, ClaimNextCounts *counts)
{
	for (uint64 row = 0; row < n; row++)
	{
		int32		kind = DatumGetInt32(eg_result_not_null(row, 10));
		Datum		values[8];
		bool		nulls[8];

		if (kind == ROW_FAILED)
		{
			counts->failed++;
			continue;
		}
		for (int column = 0; column < 8; column++)
			values[column] = eg_result(row, column + 1, &nulls[column]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		if (kind == ROW_CLAIMED)
		{
			int64		id = DatumGetInt64(values[0]);

			counts->claimed++;
			if (id > counts->newest_claimed)
				counts->newest_claimed = id;
		}
		else
		{
			counts->rescued++;
			if (DatumGetBool(eg_result_not_null(row, 9)))
				counts->owner_gone++;
		}
	}
}

/*
 * Claims up to max_claims due pending rows after row `after`, oldest first,
 * into the result set: by direct writes, or claim_pending_statement where
 * they do not apply. values/nulls are claim_next's statement parameters.
 */
static void
claim_pending_rows(ReturnSetInfo *rsinfo, Datum *values, char *nulls, int32 max_claims, int64 after,
				   ClaimNextCounts *counts, bool *spi)
{
	EgWriter	writer;

	if (eg_writer_begin(&writer))
	{
		EgGrant		grant;
		EgKeyFilter regions;
		EgKeyFilter models;

		grant.worker = values[0];
		grant.worker_null = false;
		grant.owner_pid = values[5];
		grant.owner_backend_start = values[6];
		grant.owner_null = nulls[5] == 'n';
		grant.lease_expires_at = eg_lease_end(values[2]);
		key_filter(values[3], nulls[3] == 'n', &regions);
		key_filter(values[4], nulls[4] == 'n', &models);
		counts->claimed += eg_direct_claim_pending(&writer, max_claims, &grant, &regions, &models, after,
												   rsinfo->setResult, rsinfo->setDesc, &counts->newest_claimed);
		eg_writer_end(&writer);
	}
	else
	{
		values[1] = Int32GetDatum(max_claims);
		values[7] = Int64GetDatum(after);
		eg_connect_spi(spi);
		emit_claimed(rsinfo, eg_execute(&claim_pending_statement, values, nulls, 0), counts);
	}
}

/*
 * claim_next(worker, max_claims, lease, regions, models, track_owner)
 * RETURNS SETOF execguard.claimed_execution
 */
extern "C" Datum
execguard_claim_next(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo;
	Datum		values[8];
	char		nulls[9] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', '\0'};
	bool		isnull;
	int32		max_claims;
	ClaimNextCounts counts = {0, 0, 0, 0, 0};
	bool		track_owner;
	uint32		filter;
	TimestampTz now;
	bool		spi = false;

	eg_require_schema();
	eg_require_arg(fcinfo, 0, "worker");
	values[0] = eg_worker_arg(fcinfo, 0, &isnull);
	eg_require_arg(fcinfo, 1, "max_claims");
	max_claims = PG_GETARG_INT32(1);
	if (max_claims < 1 || max_claims > MAX_CLAIMS_PER_CALL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_claims must be between 1 and %d", MAX_CLAIMS_PER_CALL)));
	values[2] = eg_lease_arg(fcinfo, 2);
	values[3] = key_filter_arg(fcinfo, 3, EG_KEY_REGION, "regions", &isnull);
	nulls[3] = isnull ? 'n' : ' ';
	values[4] = key_filter_arg(fcinfo, 4, EG_KEY_MODEL_ID, "models", &isnull);
	nulls[4] = isnull ? 'n' : ' ';
	track_owner = eg_track_owner_arg(fcinfo, 5);
	eg_owner_values(track_owner, &values[5], &values[6], &nulls[5], &nulls[6]);
	filter = filter_fingerprint(values[3], nulls[3] == 'n', values[4], nulls[4] == 'n');
	if (filter != pending_scan_filter)
	{
		pending_scan_after = 0;
		pending_scan_filter = filter;
	}

	rsinfo = eg_begin_srf(fcinfo);
	sweep_dead_owners(&spi);
	now = GetCurrentTimestamp();
	/* Busy path: pending rows only, unless they do not fill the request. */
	if (now - last_rescue_pass < (TimestampTz) eg_rescue_interval_ms * 1000)
		claim_pending_rows(rsinfo, values, nulls, max_claims, pending_scan_after, &counts, &spi);
	if (counts.claimed < (uint64) max_claims)
	{
		values[1] = Int32GetDatum(max_claims - (int32) counts.claimed);
		eg_connect_spi(&spi);
		emit_claimed(rsinfo, eg_execute(&rescue_statement, values, nulls, 0), &counts);
		last_rescue_pass = now;
		if (counts.claimed + counts.rescued < (uint64) max_claims)
			claim_pending_rows(rsinfo, values, nulls, max_claims - (int32) (counts.claimed + counts.rescued), 0,
							   &counts, &spi);
	}
	if (spi)
		SPI_finish();
	if (counts.claimed > 0)
		pending_scan_after = counts.newest_claimed;

	eg_count(EG_CLAIMS_CLAIMED, counts.claimed);
	eg_count(EG_CLAIMS_RECLAIMED, counts.rescued);
	eg_count(EG_LEASES_RESCUED_OWNER_GONE, counts.owner_gone);
	eg_count(EG_LEASES_RESCUED_EXPIRED, counts.rescued - counts.owner_gone);
	eg_count(EG_EXECUTIONS_FAILED, counts.failed);
	return (Datum) 0;
}

/* ---------------------------------------------------------------------- */
/* Writes by the holder of a grant: each needs the current fencing token  */
/* ---------------------------------------------------------------------- */

/*
 * A heartbeat of an owner-tracked claim also records the calling session
 * as the owner: the holder proved it is alive, perhaps over a new
 * connection (after a reconnect or a server restart), and rescue must
 * follow the session that now holds the work, not the one that claimed it.
 */
static EgStatement heartbeat_statement = {
	"WITH beat AS ("
	"  UPDATE execguard.executions SET lease_expires_at = pg_catalog.now() + $3, "
	"         owner_pid = CASE WHEN owner_pid IS NULL THEN NULL ELSE $4 END, "
	"         owner_backend_start = CASE WHEN owner_pid IS NULL THEN NULL ELSE $5 END "
	"   WHERE execution_id = $1 AND fencing_token = $2 AND status = 'running' "
	"  RETURNING execution_id, lease_expires_at), "
	"queued AS (" QUEUE_AS_RUNNING("beat") ") "
	"SELECT 1 FROM beat",
	5, {INT8OID, INT8OID, INTERVALOID, INT4OID, TIMESTAMPTZOID}, NULL
};

static EgStatement complete_statement = {
	"WITH done AS ("
	"  UPDATE execguard.executions SET status = 'completed', result = $3, "
	"         finished_at = pg_catalog.now(), owner_pid = NULL, owner_backend_start = NULL "
	"   WHERE execution_id = $1 AND fencing_token = $2 AND status = 'running' "
	"  RETURNING execution_id), "
	"dequeued AS (" DEQUEUE("done") ") "
	"SELECT 1 FROM done",
	3, {INT8OID, INT8OID, JSONBOID}, NULL
};

/* One row per input position, in input order. */
static EgStatement complete_batch_statement = {
	"WITH input AS ("
	"  SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3)) "
	"         WITH ORDINALITY AS i(execution_id, fencing_token, result, position)), "
	"done AS ("
	"  UPDATE execguard.executions AS e SET status = 'completed', result = i.result, "
	"         finished_at = pg_catalog.now(), owner_pid = NULL, owner_backend_start = NULL "
	"    FROM input AS i "
	"   WHERE e.execution_id = ANY ($1) AND e.execution_id = i.execution_id "
	"     AND e.fencing_token = i.fencing_token AND e.status = 'running' "
	"  RETURNING e.execution_id), "
	"dequeued AS (" DEQUEUE("done") ") "
	"SELECT i.execution_id, d.execution_id IS NOT NULL "
	"  FROM input AS i LEFT JOIN done AS d ON d.execution_id = i.execution_id "
	" ORDER BY i.position",
	3, {INT8ARRAYOID, INT8ARRAYOID, JSONBARRAYOID}, NULL
};

/*
 * Retryable with attempts left: back to pending, due after $5 or after an
 * exponential backoff with jitter (2 s doubling per attempt, at most 5
 * minutes, times 0.5 to 1.5). Otherwise failed.
 */
static EgStatement fail_statement = {
	"WITH written AS ("
	"  UPDATE execguard.executions AS e SET "
	"         status = CASE WHEN $4 AND e.attempt < e.max_attempts THEN 'pending' ELSE 'failed' END, "
	"         not_before = CASE WHEN $4 AND e.attempt < e.max_attempts THEN pg_catalog.now() + "
	"             coalesce($5, pg_catalog.make_interval(secs => "
	"                 least(300.0, 2.0 * pg_catalog.power(2.0, least(e.attempt, 20) - 1)) "
	"                 * (0.5 + pg_catalog.random()))) END, "
	"         finished_at = CASE WHEN $4 AND e.attempt < e.max_attempts THEN NULL "
	"             ELSE pg_catalog.now() END, "
	"         error = $3, lease_expires_at = NULL, owner_pid = NULL, owner_backend_start = NULL "
	"   WHERE execution_id = $1 AND fencing_token = $2 AND status = 'running' "
	"  RETURNING e.execution_id, e.status), "
	"requeued AS (" QUEUE_AS_PENDING("SELECT execution_id FROM written WHERE status = 'pending'") "), "
	"dequeued AS (" DEQUEUE("written WHERE status <> 'pending'") ") "
	"SELECT status FROM written",
	5, {INT8OID, INT8OID, TEXTOID, BOOLOID, INTERVALOID}, NULL
};

/* Back to pending; the grant's attempt is given back. */
static EgStatement release_statement = {
	"WITH released AS ("
	"  UPDATE execguard.executions SET status = 'pending', attempt = greatest(attempt - 1, 0), "
	"         worker = NULL, lease_expires_at = NULL, owner_pid = NULL, owner_backend_start = NULL, "
	"         started_at = NULL, not_before = NULL "
	"   WHERE execution_id = $1 AND fencing_token = $2 AND status = 'running' "
	"  RETURNING execution_id, job_id), "
	"requeued AS (" QUEUE_AS_PENDING("SELECT execution_id FROM released") ") "
	"SELECT job_id FROM released",
	2, {INT8OID, INT8OID}, NULL
};

/* Runs a single-row token-checked write; a refusal is a counted stale write. */
static bool
fenced_write(EgStatement *statement, Datum *values, const char *nulls)
{
	uint64		n;

	SPI_connect();
	n = eg_execute(statement, values, nulls, 0);
	SPI_finish();
	if (n == 0)
		eg_count(EG_STALE_WRITES_REJECTED, 1);
	return n > 0;
}

extern "C" Datum
execguard_heartbeat(PG_FUNCTION_ARGS)
{
	Datum		values[5];
	char		pid_null;
	char		start_null;
	EgWriter	writer;
	bool		held;

	eg_require_schema();
	eg_require_arg(fcinfo, 0, "execution_id");
	eg_require_arg(fcinfo, 1, "fencing_token");
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	values[2] = eg_lease_arg(fcinfo, 2);
	eg_owner_values(true, &values[3], &values[4], &pid_null, &start_null);
	if (!eg_writer_begin(&writer))
		PG_RETURN_BOOL(fenced_write(&heartbeat_statement, values, NULL));

	held = eg_direct_heartbeat(&writer, PG_GETARG_INT64(0), PG_GETARG_INT64(1), eg_lease_end(values[2]), values[3],
							   values[4]);
	eg_writer_end(&writer);
	if (!held)
		eg_count(EG_STALE_WRITES_REJECTED, 1);
	PG_RETURN_BOOL(held);
}

extern "C" Datum
execguard_complete_execution(PG_FUNCTION_ARGS)
{
	Datum		values[3];
	bool		accepted;
	EgWriter	writer;

	eg_require_schema();
	eg_require_arg(fcinfo, 0, "execution_id");
	eg_require_arg(fcinfo, 1, "fencing_token");
	eg_require_arg(fcinfo, 2, "result");
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	values[2] = PG_GETARG_DATUM(2);
	if (eg_writer_begin(&writer))
	{
		accepted = eg_direct_complete(&writer, PG_GETARG_INT64(0), PG_GETARG_INT64(1), values[2]);
		eg_writer_end(&writer);
		if (!accepted)
			eg_count(EG_STALE_WRITES_REJECTED, 1);
	}
	else
		accepted = fenced_write(&complete_statement, values, NULL);
	if (accepted)
		eg_count(EG_EXECUTIONS_COMPLETED, 1);
	PG_RETURN_BOOL(accepted);
}

static int
compare_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/* Elements of a one-dimensional array argument, none NULL. */
static int
array_arg(FunctionCallInfo fcinfo, int argno, const char *name, Oid element_type, int16 typlen,
		  bool typbyval, char typalign, Datum **elements)
{
	ArrayType  *array;
	bool	   *nulls;
	int			n;

	eg_require_arg(fcinfo, argno, name);
	array = PG_GETARG_ARRAYTYPE_P(argno);
	if (ARR_NDIM(array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", name)));
	deconstruct_array(array, element_type, typlen, typbyval, typalign, elements, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s[%d] must not be null", name, i)));
	return n;
}

/*
 * complete_executions(execution_ids, fencing_tokens, results): the batch
 * form, one statement for the whole batch.
 */
extern "C" Datum
execguard_complete_executions(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo;
	Datum	   *ids;
	Datum	   *tokens;
	Datum	   *results;
	int			n_ids;
	int64	   *sorted;
	uint64		n;
	uint64		accepted = 0;
	Datum		values[3];
	EgWriter	writer;

	eg_require_schema();
	n_ids = array_arg(fcinfo, 0, "execution_ids", INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &ids);
	if (array_arg(fcinfo, 1, "fencing_tokens", INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &tokens) != n_ids ||
		array_arg(fcinfo, 2, "results", JSONBOID, -1, false, TYPALIGN_INT, &results) != n_ids)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("execution_ids, fencing_tokens and results must have the same length")));

	/* A repeated id would make "accepted" ambiguous: refuse it. */
	sorted = (int64 *) palloc(sizeof(int64) * (n_ids + 1));
	for (int i = 0; i < n_ids; i++)
		sorted[i] = DatumGetInt64(ids[i]);
	qsort(sorted, n_ids, sizeof(int64), compare_int64);
	for (int i = 1; i < n_ids; i++)
		if (sorted[i] == sorted[i - 1])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("execution_ids contains %lld more than once", (long long) sorted[i])));

	rsinfo = eg_begin_srf(fcinfo);
	if (eg_writer_begin(&writer))
	{
		for (int i = 0; i < n_ids; i++)
		{
			Datum		out[2];
			bool		out_nulls[2] = {false, false};
			bool		done = eg_direct_complete(&writer, DatumGetInt64(ids[i]), DatumGetInt64(tokens[i]),
												  results[i]);

			out[0] = ids[i];
			out[1] = BoolGetDatum(done);
			accepted += done;
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, out_nulls);
		}
		eg_writer_end(&writer);
		n = (uint64) n_ids;
	}
	else
	{
		values[0] = PG_GETARG_DATUM(0);
		values[1] = PG_GETARG_DATUM(1);
		values[2] = PG_GETARG_DATUM(2);
		SPI_connect();
		n = eg_execute(&complete_batch_statement, values, NULL, 0);
		for (uint64 row = 0; row < n; row++)
		{
			Datum		out[2];
			bool		out_nulls[2] = {false, false};

			out[0] = eg_result_not_null(row, 1);
			out[1] = eg_result_not_null(row, 2);
			if (DatumGetBool(out[1]))
				accepted++;
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, out_nulls);
		}
		SPI_finish();
	}

	eg_count(EG_EXECUTIONS_COMPLETED, accepted);
	eg_count(EG_STALE_WRITES_REJECTED, n - accepted);
	return (Datum) 0;
}

extern "C" Datum
execguard_fail_execution(PG_FUNCTION_ARGS)
{
	Datum		values[5];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', '\0'};
	const char *outcome;

	eg_require_schema();
	eg_require_arg(fcinfo, 0, "execution_id");
	eg_require_arg(fcinfo, 1, "fencing_token");
	eg_require_arg(fcinfo, 3, "retryable");
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	values[2] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
	nulls[2] = PG_ARGISNULL(2) ? 'n' : ' ';
	values[3] = PG_GETARG_DATUM(3);
	if (PG_ARGISNULL(4))
	{
		values[4] = (Datum) 0;
		nulls[4] = 'n';
	}
	else
	{
		double		seconds = eg_interval_seconds(PG_GETARG_INTERVAL_P(4));

		if (!(seconds >= 0 && seconds <= MAX_RETRY_AFTER_SECONDS))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("retry_after must be between 0 and 30 days")));
		values[4] = PG_GETARG_DATUM(4);
	}

	SPI_connect();
	if (eg_execute(&fail_statement, values, nulls, 0) == 0)
		outcome = "stale";
	else
		outcome = strcmp(TextDatumGetCString(eg_result_not_null(0, 1)), "pending") == 0 ?
			"retry_scheduled" : "failed";
	SPI_finish();

	if (outcome[0] == 's')
		eg_count(EG_STALE_WRITES_REJECTED, 1);
	else if (outcome[0] == 'r')
	{
		pending_scan_after = 0;
		eg_count(EG_RETRIES_SCHEDULED, 1);
	}
	else
		eg_count(EG_EXECUTIONS_FAILED, 1);
	PG_RETURN_TEXT_P(cstring_to_text(outcome));
}

extern "C" Datum
execguard_release_execution(PG_FUNCTION_ARGS)
{
	Datum		values[2];
	bool		released;

	eg_require_schema();
	eg_require_arg(fcinfo, 0, "execution_id");
	eg_require_arg(fcinfo, 1, "fencing_token");
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	SPI_connect();
	released = eg_execute(&release_statement, values, NULL, 0) > 0;
	/* Tell idle runners at once: the released work is due now. */
	if (released)
	{
		Async_Notify("execguard_work", TextDatumGetCString(eg_result_not_null(0, 1)));
		pending_scan_after = 0;
	}
	SPI_finish();
	eg_count(released ? EG_EXECUTIONS_RELEASED : EG_STALE_WRITES_REJECTED, 1);
	PG_RETURN_BOOL(released);
}

/* ---------------------------------------------------------------------- */
/* Job-level operations                                                   */
/* ---------------------------------------------------------------------- */

/*
 * Two statements, in this order: the job row is locked (waiting for any
 * first claim of one of its keys, which holds FOR SHARE on it) before the
 * executions are cancelled with a new snapshot, so a claim that raced the
 * cancel is either refused or cancelled here, never left running.
 */
static EgStatement cancel_job_row = {
	"UPDATE execguard.jobs SET cancelled_at = coalesce(cancelled_at, pg_catalog.now()) WHERE job_id = $1",
	1, {TEXTOID}, NULL
};

static EgStatement cancel_executions = {
	"WITH cancelled AS ("
	"  UPDATE execguard.executions SET status = 'cancelled', finished_at = pg_catalog.now(), "
	"         lease_expires_at = NULL, owner_pid = NULL, owner_backend_start = NULL "
	"   WHERE job_id = $1 AND status IN ('pending', 'running') "
	"  RETURNING execution_id), "
	"dequeued AS (" DEQUEUE("cancelled") ") "
	"SELECT 1 FROM cancelled",
	1, {TEXTOID}, NULL
};

/* Failed units get a fresh attempt budget; completed ones are never touched. */
static EgStatement retry_statement = {
	"WITH retried AS ("
	"  UPDATE execguard.executions AS e SET status = 'pending', not_before = NULL, finished_at = NULL, "
	"         max_attempts = e.attempt + coalesce((SELECT j.max_attempts FROM execguard.jobs AS j "
	"                                               WHERE j.job_id = $1), 3) "
	"   WHERE job_id = $1 AND status = 'failed' "
	"     AND NOT EXISTS (SELECT 1 FROM execguard.jobs AS j "
	"                      WHERE j.job_id = $1 AND j.cancelled_at IS NOT NULL) "
	"  RETURNING e.execution_id), "
	"requeued AS (" QUEUE_AS_PENDING("SELECT execution_id FROM retried") ") "
	"SELECT 1 FROM retried",
	1, {TEXTOID}, NULL
};

extern "C" Datum
execguard_cancel_job(PG_FUNCTION_ARGS)
{
	Datum		job_id = eg_key_arg(fcinfo, 0, EG_KEY_JOB_ID, "job_id");
	int32		cancelled;
	int32		jobs;

	eg_require_schema();
	SPI_connect();
	jobs = (int32) eg_execute(&cancel_job_row, &job_id, NULL, 0);
	cancelled = (int32) eg_execute(&cancel_executions, &job_id, NULL, 0);
	SPI_finish();

	if (cancelled > 0 || jobs > 0)
		Async_Notify("execguard_cancel", text_to_cstring(DatumGetTextPP(job_id)));
	eg_count(EG_EXECUTIONS_CANCELLED, (uint64) cancelled);
	PG_RETURN_INT32(cancelled);
}

extern "C" Datum
execguard_retry_job(PG_FUNCTION_ARGS)
{
	Datum		job_id = eg_key_arg(fcinfo, 0, EG_KEY_JOB_ID, "job_id");
	uint64		n;

	eg_require_schema();
	SPI_connect();
	n = eg_execute(&retry_statement, &job_id, NULL, 0);
	SPI_finish();

	if (n > 0)
	{
		Async_Notify("execguard_work", text_to_cstring(DatumGetTextPP(job_id)));
		pending_scan_after = 0;
	}
	eg_count(EG_RETRIES_SCHEDULED, n);
	PG_RETURN_INT32((int32) n);
}
