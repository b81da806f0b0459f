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
}

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
