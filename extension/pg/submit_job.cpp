/*
 * extension/pg/submit_job.cpp
 *
 * execguard.submit_job(spec jsonb): the core turns the spec into the exact
 * list of units (extension/core/job_spec.cpp); this adapter writes them in
 * the caller's transaction. Idempotence and conflicts are decided by the
 * primary key of execguard.jobs and the unique key of executions, never by
 * a read followed by a write.
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
#include "utils/jsonb.h"

#include "core_call.h"
#include "executions_table.h"
#include "spi_plans.h"
#include "srf.h"
#include "stats.h"
}

extern "C"
{
PG_FUNCTION_INFO_V1(execguard_submit_job);
}

/* A region the regions table does not list, when the table has rows. */
static EgStatement unknown_region = {
	"SELECT r FROM pg_catalog.jsonb_array_elements_text($1 -> 'regions') AS r "
	" WHERE EXISTS (SELECT 1 FROM execguard.regions) "
	"   AND NOT EXISTS (SELECT 1 FROM execguard.regions g WHERE g.name = r) "
	" LIMIT 1",
	1, {JSONBOID}, NULL
};

static EgStatement insert_job = {
	"INSERT INTO execguard.jobs (job_id, spec, max_attempts) "
	"VALUES ($1 ->> 'job_id', $1 -> 'spec', ($1 ->> 'max_attempts')::int) "
	"ON CONFLICT (job_id) DO NOTHING RETURNING 1",
	1, {JSONBOID}, NULL
};

/*
 * A job id submitted before: its row, locked FOR SHARE so that purge_jobs
 * (which marks the row before it deletes anything) cannot take the job
 * while this resubmission inserts its missing units: either the purge
 * waits for this transaction, or this one sees the job purged. Columns:
 * the same spec?, a tombstone of cancel_job?, purged?
 */
static EgStatement existing_job = {
	"SELECT spec IS NOT DISTINCT FROM $1 -> 'spec', spec IS NULL, purged_at IS NOT NULL "
	"  FROM execguard.jobs WHERE job_id = $1 ->> 'job_id' FOR SHARE",
	1, {JSONBOID}, NULL
};

static EgStatement insert_units = {
	"WITH created AS ("
	"  INSERT INTO execguard.executions "
	"         (job_id, model_id, region, question_id, max_attempts, payload) "
	"  SELECT $1 ->> 'job_id', u ->> 0, u ->> 1, u ->> 2, ($1 ->> 'max_attempts')::int, u -> 3 "
	"    FROM pg_catalog.jsonb_array_elements($1 -> 'units') AS u "
	"  ON CONFLICT (job_id, model_id, region, question_id) DO NOTHING "
	"  RETURNING execution_id, region, model_id), "
	"queued AS (INSERT INTO execguard.queue (execution_id, region, model_id) "
	"           SELECT execution_id, region, model_id FROM created) "
	"SELECT (SELECT count(*) FROM created)::int, "
	"       pg_catalog.jsonb_array_length($1 -> 'units'), "
	"       ($1 ->> 'duplicates_removed')::int",
	1, {JSONBOID}, NULL
};

extern "C" Datum
execguard_submit_job(PG_FUNCTION_ARGS)
{
	Jsonb	   *spec = PG_GETARG_JSONB_P(0);
	ReturnSetInfo *rsinfo;
	eg_text		plan_text = {NULL, 0};
	eg_error	error;
	eg_status	status;
	Datum		plan;
	char	   *job_id;
	bool		job_is_new;
	int32		created;
	int32		total;
	int32		duplicates_removed;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	/* As every function that writes executions (arguments.h, eg_require_schema). */
	(void) eg_executions_table();
	rsinfo = eg_begin_srf(fcinfo);

	status = eg_plan_job(eg_slice_of_cstring(eg_jsonb_to_cstring(spec)), &plan_text, &error);
	plan = eg_cstring_to_jsonb(eg_take_text(status, &plan_text, &error));

	SPI_connect();

	if (eg_execute(&unknown_region, &plan, NULL, 1) > 0)
	{
		char	   *region = TextDatumGetCString(eg_result_not_null(0, 1));

		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("region \"%s\" is not in execguard.regions", region),
				 errhint("Insert it into execguard.regions, or correct the spec; execguard never maps a region to another.")));
	}

	job_is_new = eg_execute(&insert_job, &plan, NULL, 0) > 0;
	job_id = TextDatumGetCString(DirectFunctionCall2(jsonb_object_field_text, plan,
													  CStringGetTextDatum("job_id")));
	if (!job_is_new)
	{
		/* A row that is gone again was a concurrent submit that rolled back. */
		if (eg_execute(&existing_job, &plan, NULL, 0) != 1)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("job \"%s\" changed while it was being submitted", job_id),
					 errhint("Retry the call.")));
		if (DatumGetBool(eg_result_not_null(0, 3)))
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("job \"%s\" was purged", job_id),
					 errdetail("purge_jobs deleted its executions; its id stays taken so that its units are "
							   "never run again by a late resubmission."),
					 errhint("Submit the job under a new id if it is meant to run again.")));
		if (DatumGetBool(eg_result_not_null(0, 2)))
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("job \"%s\" was cancelled before it was submitted", job_id),
					 errdetail("cancel_job was called with this id before any submit_job of it."),
					 errhint("Submit the job under a new id if it is meant to run.")));
		if (!DatumGetBool(eg_result_not_null(0, 1)))
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("job \"%s\" already exists with a different spec", job_id),
					 errdetail("A job id can be submitted again only with a spec that normalises to the same models, regions, questions, params and max_attempts."),
					 errhint("Submit the changed job under a new id.")));
	}

	eg_execute(&insert_units, &plan, NULL, 0);
	created = DatumGetInt32(eg_result_not_null(0, 1));
	total = DatumGetInt32(eg_result_not_null(0, 2));
	duplicates_removed = DatumGetInt32(eg_result_not_null(0, 3));

	SPI_finish();

	if (created > 0)
		Async_Notify("execguard_work", "");
	if (job_is_new)
	{
		eg_count(EG_JOBS_SUBMITTED, 1);
		eg_count(EG_NORMALIZATION_DUPLICATES_REMOVED, (uint64) duplicates_removed);
	}

	values[0] = CStringGetTextDatum(job_id);
	values[1] = Int32GetDatum(created);
	values[2] = Int32GetDatum(total - created);
	values[3] = Int32GetDatum(duplicates_removed);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}
