/*
 * extension/pg/retention.cpp
 *
 * execguard.purge_jobs(older_than, max_executions): deletes the executions
 * of finished jobs in bounded batches. One call is one batch in the
 * caller's transaction; the procedure execguard.purge repeats it with a
 * commit after each (execguard--0.5.0--0.6.0.sql).
 *
 * A job is purged in three steps, each a statement that re-checks what it
 * acts on:
 *   1. mark: a job with nothing pending or running whose last execution
 *      finished (and which was submitted) longer ago than older_than gets
 *      purged_at. From then on claims of its keys are refused (claim_execution
 *      reads the job row, FOR SHARE, before it creates a key), submit_job of
 *      its id is an error (it locks the row FOR SHARE, so it either finishes
 *      before the mark or sees it), and retry_job leaves it alone.
 *   2. delete: finished executions of marked jobs, at most max_executions
 *      per call, oldest job first. Only finished rows: a row that a claim
 *      created while the job was being marked (with
 *      execguard.claims_require_submitted_job off) is left to finish and
 *      deleted by a later call.
 *   3. finish: a marked job with no executions left gets purge_finished_at.
 * The job's row stays, as a tombstone.
 *
 * Claims never wait for a purge: finished executions have no queue row,
 * and no claim locks them. The only lock a purge shares with claims is the
 * job row's (mark takes it; a claim creating a key of that job takes it
 * FOR SHARE), for one short statement.
 */
/* PostgreSQL declares its API with C linkage only when asked to. */
extern "C"
{
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type_d.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/timestamp.h"

#include "arguments.h"
#include "spi_plans.h"
#include "stats.h"
}

extern "C"
{
PG_FUNCTION_INFO_V1(execguard_purge_jobs);
}

/* Bounds of max_executions: one batch's rows, WAL and locks stay small. */
#define MIN_BATCH 1
#define MAX_BATCH 1000000

/*
 * Jobs marked per call: each costs a read of all the job's executions
 * (about 1 s per million on the 2-core test machine), so this bounds how
 * long one call can take reading before it deletes anything.
 */
#define MARK_JOBS_PER_CALL 10

/*
 * $1: older_than, $2: how many jobs. Candidates come from jobs_unpurged
 * in submission order (a job finished before the cutoff was submitted
 * before it); each is read through executions_key up to its first
 * execution that is unfinished or finished too recently, so a finished
 * job costs a read of all its executions, and an old job still running
 * costs a read up to its first unfinished one, on every call.
 */
static EgStatement mark_jobs = {
	"UPDATE execguard.jobs AS j SET purged_at = pg_catalog.now() "
	" WHERE j.job_id IN ("
	"   SELECT c.job_id FROM execguard.jobs AS c "
	"    WHERE c.purged_at IS NULL AND c.submitted_at < pg_catalog.now() - $1 "
	"      AND (c.cancelled_at IS NULL OR c.cancelled_at < pg_catalog.now() - $1) "
	"      AND NOT EXISTS (SELECT 1 FROM execguard.executions AS e "
	"                       WHERE e.job_id = c.job_id "
	"                         AND (e.status IN ('pending', 'running') "
	"                              OR e.finished_at >= pg_catalog.now() - $1)) "
	"    ORDER BY c.submitted_at LIMIT $2) "
	"   AND j.purged_at IS NULL",
	2, {INTERVALOID, INT4OID}, NULL
};

/*
 * $1: the most rows to delete. The deleted executions' queue rows (there
 * are none: finished executions are not queued) go by the foreign key's
 * cascade.
 */
static EgStatement delete_batch = {
	"WITH victims AS ("
	"  SELECT e.execution_id "
	"    FROM (SELECT job_id FROM execguard.jobs "
	"           WHERE purged_at IS NOT NULL AND purge_finished_at IS NULL "
	"           ORDER BY purged_at) AS p "
	"   CROSS JOIN LATERAL (SELECT x.execution_id FROM execguard.executions AS x "
	"                        WHERE x.job_id = p.job_id "
	"                          AND x.status IN ('completed', 'failed', 'cancelled') "
	"                        LIMIT $1) AS e "
	"   LIMIT $1), "
	"deleted AS ("
	"  DELETE FROM execguard.executions AS e USING victims AS v "
	"   WHERE e.execution_id = v.execution_id "
	"     AND e.status IN ('completed', 'failed', 'cancelled') "
	"  RETURNING 1) "
	"SELECT pg_catalog.count(*) FROM deleted",
	1, {INT4OID}, NULL
};

static EgStatement finish_purges = {
	"UPDATE execguard.jobs AS j SET purge_finished_at = pg_catalog.now() "
	" WHERE purged_at IS NOT NULL AND purge_finished_at IS NULL "
	"   AND NOT EXISTS (SELECT 1 FROM execguard.executions AS e WHERE e.job_id = j.job_id)",
	0, {}, NULL
};

static int64
delete_executions(int32 limit)
{
	Datum		value = Int32GetDatum(limit);

	eg_execute(&delete_batch, &value, NULL, 0);
	return DatumGetInt64(eg_result_not_null(0, 1));
}

/* purge_jobs(older_than interval, max_executions int, OUT jobs_purged int, OUT executions_deleted bigint) */
extern "C" Datum
execguard_purge_jobs(PG_FUNCTION_ARGS)
{
	Interval   *older_than = PG_GETARG_INTERVAL_P(0);
	int32		max_executions = PG_GETARG_INT32(1);
	int64		deleted;
	int32		finished;
	TupleDesc	tupdesc;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	eg_require_schema();
	if (eg_interval_seconds(older_than) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("older_than must not be negative")));
	if (max_executions < MIN_BATCH || max_executions > MAX_BATCH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_executions must be between %d and %d, not %d", MIN_BATCH, MAX_BATCH,
						max_executions)));

	SPI_connect();
	/* Purges under way first, so that a call makes progress on them. */
	deleted = delete_executions(max_executions);
	finished = (int32) eg_execute(&finish_purges, NULL, NULL, 0);
	if (deleted < max_executions)
	{
		Datum		args[2] = {IntervalPGetDatum(older_than), Int32GetDatum(MARK_JOBS_PER_CALL)};

		if (eg_execute(&mark_jobs, args, NULL, 0) > 0)
		{
			deleted += delete_executions((int32) (max_executions - deleted));
			finished += (int32) eg_execute(&finish_purges, NULL, NULL, 0);
		}
	}
	SPI_finish();
	eg_count(EG_EXECUTIONS_PURGED, (uint64) deleted);

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "purge_jobs must return a composite type");
	values[0] = Int32GetDatum(finished);
	values[1] = Int64GetDatum(deleted);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}
