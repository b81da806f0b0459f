/*
 * extension/pg/fenced_writes.cpp
 *
 * Writes by the holder of a grant: heartbeat, complete_execution(s),
 * fail_execution, release_execution. Each needs the current fencing token
 * and writes only a row that is running with it; a refusal is a stale
 * write, counted. A rescue or a cancel that changed the row first makes
 * the token stale, whichever path the write takes.
 *
 * heartbeat and complete_execution(s) are hot: each has a direct write
 * (writer.h) beside its SQL statement, which runs instead when direct
 * writes are off or do not apply; fail and release are SQL only.
 */
/* PostgreSQL declares its API with C linkage only when asked to. */
extern "C"
{
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type_d.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "arguments.h"
#include "claim_next.h"
#include "executions_table.h"
#include "grant.h"
#include "queue_rows.h"
#include "spi_plans.h"
#include "srf.h"
#include "stats.h"
#include "writer.h"
}

extern "C"
{
PG_FUNCTION_INFO_V1(execguard_heartbeat);
PG_FUNCTION_INFO_V1(execguard_complete_execution);
PG_FUNCTION_INFO_V1(execguard_complete_executions);
PG_FUNCTION_INFO_V1(execguard_fail_execution);
PG_FUNCTION_INFO_V1(execguard_release_execution);
}

#define MAX_RETRY_AFTER_SECONDS (30.0 * 24 * 3600)

/* ---------------------------------------------------------------------- */
/* Token-checked writes, in SQL and direct                                */
/* ---------------------------------------------------------------------- */

/*
 * Of the (execution_id, fencing_token) pairs whose writes were refused, how
 * many were refused because cancel_job cancelled the execution under that
 * grant: the holder is told to stop, which is the point of cancelling, and
 * is not a stale writer. Counted apart (writes_after_cancel), so that the
 * stale-write alert means what it says.
 */
static EgStatement refused_cancelled = {
	"SELECT pg_catalog.count(*) FROM unnest($1::pg_catalog.int8[], $2::pg_catalog.int8[]) AS t(id, token) "
	"  JOIN execguard.executions AS e ON e.execution_id = t.id AND e.fencing_token = t.token "
	" WHERE e.status = 'cancelled'",
	2, {INT8ARRAYOID, INT8ARRAYOID}, NULL
};

static void
count_refused_array(Datum ids, Datum tokens, uint64 refused)
{
	Datum		values[2] = {ids, tokens};
	uint64		cancelled;

	if (refused == 0)
		return;
	SPI_connect();
	eg_execute(&refused_cancelled, values, NULL, 0);
	cancelled = (uint64) DatumGetInt64(eg_result_not_null(0, 1));
	SPI_finish();
	if (cancelled > refused)
		cancelled = refused;
	eg_count(EG_WRITES_AFTER_CANCEL, cancelled);
	eg_count(EG_STALE_WRITES_REJECTED, refused - cancelled);
}

/* One refused write of execution_id under fencing_token, counted. */
static void
count_refused(int64 execution_id, int64 fencing_token)
{
	Datum		id = Int64GetDatum(execution_id);
	Datum		token = Int64GetDatum(fencing_token);

	count_refused_array(PointerGetDatum(construct_array(&id, 1, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE)),
						PointerGetDatum(construct_array(&token, 1, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE)),
						1);
}

/* Runs a single-row token-checked write ($1 id, $2 token); a refusal is counted. */
static bool
fenced_write(EgStatement *statement, Datum *values, const char *nulls)
{
	uint64		n;

	SPI_connect();
	n = eg_execute(statement, values, nulls, 0);
	SPI_finish();
	if (n == 0)
		count_refused(DatumGetInt64(values[0]), DatumGetInt64(values[1]));
	return n > 0;
}

static bool
held_with(EgWriter *writer, int64 fencing_token)
{
	return eg_row_status(writer->row) == EG_STATUS_RUNNING &&
		DatumGetInt64(eg_column_not_null(writer->row, EG_COL_FENCING_TOKEN)) == fencing_token;
}

typedef void (*EgFill) (EgWriter *writer, const void *arg);

/*
 * A write by the holder of a grant: only a row that is running with this
 * token is written. The check is made on the version the snapshot sees;
 * if a concurrent transaction changed the row before our write, its newest
 * version is locked and checked again (a rescue or a cancel made the token
 * stale), as an UPDATE's WHERE clause is re-checked under READ COMMITTED.
 */
static bool
fenced_update(EgWriter *writer, int64 execution_id, int64 fencing_token, EgFill fill, const void *arg)
{
	if (!eg_writer_fetch(writer, execution_id))
		return false;
	for (;;)
	{
		if (!held_with(writer, fencing_token))
			return false;
		eg_writer_prepare(writer);
		fill(writer, arg);
		switch (eg_writer_update(writer, true))
		{
			case EG_WRITE_DONE:
				return true;
			case EG_WRITE_CHANGED:
				/* Locked now: the next write cannot be overtaken. */
				if (!eg_writer_lock_newest(writer))
					return false;
				break;
			case EG_WRITE_BUSY:
				elog(ERROR, "execguard: a waiting update found its row busy");
		}
	}
}

/* ---------------------------------------------------------------------- */
/* heartbeat                                                              */
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
	"  RETURNING execution_id, lease_expires_at, region, model_id), "
	"queued AS (" QUEUE_AS_RUNNING("beat") ") "
	"SELECT 1 FROM beat",
	5, {INT8OID, INT8OID, INTERVALOID, INT4OID, TIMESTAMPTZOID}, NULL
};

typedef struct HeartbeatFill
{
	TimestampTz lease_expires_at;
	Datum		owner_pid;
	Datum		owner_backend_start;
} HeartbeatFill;

static void
fill_heartbeat(EgWriter *writer, const void *arg)
{
	const HeartbeatFill *fill = (const HeartbeatFill *) arg;

	eg_set_column(writer, EG_COL_LEASE_EXPIRES_AT, TimestampTzGetDatum(fill->lease_expires_at), false);
	/* An untracked claim stays untracked. */
	if (!writer->isnull[writer->table->attnum[EG_COL_OWNER_PID] - 1])
	{
		eg_set_column(writer, EG_COL_OWNER_PID, fill->owner_pid, false);
		eg_set_column(writer, EG_COL_OWNER_BACKEND_START, fill->owner_backend_start, false);
	}
}

/*
 * heartbeat_statement by direct writes: extends the lease to
 * lease_expires_at and re-records the owner of an owner-tracked claim;
 * true when running with this token.
 */
static bool
eg_direct_heartbeat(EgWriter *writer, int64 execution_id, int64 fencing_token,
					TimestampTz lease_expires_at, Datum owner_pid, Datum owner_backend_start)
{
	HeartbeatFill fill;

	fill.lease_expires_at = lease_expires_at;
	fill.owner_pid = owner_pid;
	fill.owner_backend_start = owner_backend_start;
	if (!fenced_update(writer, execution_id, fencing_token, fill_heartbeat, &fill))
		return false;
	eg_queue_set(writer, execution_id, false, lease_expires_at, NULL);
	return true;
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
		count_refused(PG_GETARG_INT64(0), PG_GETARG_INT64(1));
	PG_RETURN_BOOL(held);
}

/* ---------------------------------------------------------------------- */
/* complete_execution(s)                                                  */
/* ---------------------------------------------------------------------- */

static EgStatement complete_statement = {
	"WITH done AS ("
	"  UPDATE execguard.executions SET status = 'completed', result = $3, error = NULL, "
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
	"  UPDATE execguard.executions AS e SET status = 'completed', result = i.result, error = NULL, "
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

typedef struct CompleteFill
{
	Datum		status;
	Datum		result;
	TimestampTz now;
} CompleteFill;

static void
fill_complete(EgWriter *writer, const void *arg)
{
	const CompleteFill *fill = (const CompleteFill *) arg;

	eg_set_column(writer, EG_COL_STATUS, fill->status, false);
	eg_set_column(writer, EG_COL_RESULT, fill->result, false);
	/* An earlier attempt's error does not describe a completed execution. */
	eg_set_column(writer, EG_COL_ERROR, (Datum) 0, true);
	eg_set_column(writer, EG_COL_FINISHED_AT, TimestampTzGetDatum(fill->now), false);
	eg_set_column(writer, EG_COL_OWNER_PID, (Datum) 0, true);
	eg_set_column(writer, EG_COL_OWNER_BACKEND_START, (Datum) 0, true);
}

/*
 * complete_statement by direct writes: true when the row was running with
 * this token.
 */
static bool
eg_direct_complete(EgWriter *writer, int64 execution_id, int64 fencing_token, Datum result)
{
	CompleteFill fill;

	fill.status = CStringGetTextDatum("completed");
	fill.result = result;
	fill.now = GetCurrentTransactionStartTimestamp();
	if (!fenced_update(writer, execution_id, fencing_token, fill_complete, &fill))
		return false;
	eg_queue_delete(writer, execution_id);
	return true;
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
			count_refused(PG_GETARG_INT64(0), PG_GETARG_INT64(1));
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
	count_refused_array(PG_GETARG_DATUM(0), PG_GETARG_DATUM(1), n - accepted);
	return (Datum) 0;
}

/* ---------------------------------------------------------------------- */
/* fail_execution                                                         */
/* ---------------------------------------------------------------------- */

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
	"  RETURNING e.execution_id, e.status, e.region, e.model_id), "
	"requeued AS (" QUEUE_AS_PENDING("SELECT execution_id, region, model_id FROM written WHERE status = 'pending'") "), "
	"dequeued AS (" DEQUEUE("written WHERE status <> 'pending'") ") "
	"SELECT status FROM written",
	5, {INT8OID, INT8OID, TEXTOID, BOOLOID, INTERVALOID}, NULL
};

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
		count_refused(PG_GETARG_INT64(0), PG_GETARG_INT64(1));
	else if (outcome[0] == 'r')
	{
		eg_claim_next_from_oldest();
		eg_count(EG_RETRIES_SCHEDULED, 1);
	}
	else
		eg_count(EG_EXECUTIONS_FAILED, 1);
	PG_RETURN_TEXT_P(cstring_to_text(outcome));
}

/* ---------------------------------------------------------------------- */
/* release_execution                                                      */
/* ---------------------------------------------------------------------- */

/* Back to pending; the grant's attempt is given back. */
static EgStatement release_statement = {
	"WITH released AS ("
	"  UPDATE execguard.executions SET status = 'pending', attempt = greatest(attempt - 1, 0), "
	"         worker = NULL, lease_expires_at = NULL, owner_pid = NULL, owner_backend_start = NULL, "
	"         started_at = NULL, not_before = NULL "
	"   WHERE execution_id = $1 AND fencing_token = $2 AND status = 'running' "
	"  RETURNING execution_id, region, model_id), "
	"requeued AS (" QUEUE_AS_PENDING("SELECT execution_id, region, model_id FROM released") ") "
	"SELECT 1 FROM released",
	2, {INT8OID, INT8OID}, NULL
};

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
		Async_Notify("execguard_work", "");
		eg_claim_next_from_oldest();
	}
	SPI_finish();
	if (released)
		eg_count(EG_EXECUTIONS_RELEASED, 1);
	else
		count_refused(PG_GETARG_INT64(0), PG_GETARG_INT64(1));
	PG_RETURN_BOOL(released);
}
