/*
 * extension/pg/job_operations.cpp
 *
 * Operations on a whole job: cancel_job, which stops its pending and
 * running executions (and refuses later claims of its keys), and
 * retry_job, which gives its failed executions a fresh attempt budget.
 * SQL statements only: neither is on a hot path.
 */
/* PostgreSQL declares its API with C linkage only when asked to. */
extern "C"
{
#include "postgres.h"

#include "catalog/pg_type_d.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"

#include "arguments.h"
#include "claim_next.h"
#include "queue_rows.h"
#include "spi_plans.h"
#include "stats.h"
}

extern "C"
{
PG_FUNCTION_INFO_V1(execguard_cancel_job);
PG_FUNCTION_INFO_V1(execguard_retry_job);
}

/*
 * Two statements, in this order: the job row is locked (waiting for any
 * first claim of one of its keys, which holds FOR SHARE on it) before the
 * executions are cancelled with a new snapshot, so a claim that raced the
 * cancel is either refused or cancelled here, never left running. A job id
 * never submitted gets a row too, a tombstone with no spec: cancel messages
 * can overtake submit messages, and the submit that arrives later must not
 * start the job (submit_job refuses it), nor a claim create its keys.
 */
static EgStatement cancel_job_row = {
	"INSERT INTO execguard.jobs AS j (job_id, spec, cancelled_at) VALUES ($1, NULL, pg_catalog.now()) "
	"ON CONFLICT (job_id) DO UPDATE SET cancelled_at = coalesce(j.cancelled_at, pg_catalog.now())",
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
	"     AND NOT EXISTS (SELECT 1 FROM execguard.jobs AS j WHERE j.job_id = $1 "
	"                        AND (j.cancelled_at IS NOT NULL OR j.purged_at IS NOT NULL)) "
	"  RETURNING e.execution_id, e.region, e.model_id), "
	"requeued AS (" QUEUE_AS_PENDING("SELECT execution_id, region, model_id FROM retried") ") "
	"SELECT 1 FROM retried",
	1, {TEXTOID}, NULL
};

extern "C" Datum
execguard_cancel_job(PG_FUNCTION_ARGS)
{
	Datum		job_id = eg_key_arg(fcinfo, 0, EG_KEY_JOB_ID, "job_id");
	int32		cancelled;

	eg_require_schema();
	SPI_connect();
	eg_execute(&cancel_job_row, &job_id, NULL, 0);
	cancelled = (int32) eg_execute(&cancel_executions, &job_id, NULL, 0);
	SPI_finish();

	/*
	 * Any role can LISTEN, so the payload says nothing: a runner checks the
	 * executions it holds with execution_state (docs/security.md).
	 */
	if (cancelled > 0)
		Async_Notify("execguard_cancel", "");
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
		Async_Notify("execguard_work", "");
		eg_claim_next_from_oldest();
	}
	eg_count(EG_RETRIES_SCHEDULED, n);
	PG_RETURN_INT32((int32) n);
}
