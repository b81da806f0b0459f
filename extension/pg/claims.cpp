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
#include "claim_next.h"
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
PG_FUNCTION_INFO_V1(execguard_heartbeat);
PG_FUNCTION_INFO_V1(execguard_complete_execution);
PG_FUNCTION_INFO_V1(execguard_complete_executions);
PG_FUNCTION_INFO_V1(execguard_fail_execution);
PG_FUNCTION_INFO_V1(execguard_release_execution);
PG_FUNCTION_INFO_V1(execguard_cancel_job);
PG_FUNCTION_INFO_V1(execguard_retry_job);
}

#define MAX_RETRY_AFTER_SECONDS (30.0 * 24 * 3600)
/* A claim that keeps losing races this often reports it instead of spinning. */
#define MAX_CLAIM_ROUNDS 32

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
		eg_claim_next_from_oldest();
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
		eg_claim_next_from_oldest();
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
		eg_claim_next_from_oldest();
	}
	eg_count(EG_RETRIES_SCHEDULED, n);
	PG_RETURN_INT32((int32) n);
}
