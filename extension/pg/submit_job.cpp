/*
 * extension/pg/submit_job.cpp
 *
 * execguard.submit_job(spec jsonb): the core turns the spec into a plan
 * (extension/core/job_spec.cpp): the canonical spec, the models with their
 * regions, and the questions. This adapter writes the job row, then
 * expands the units (every model × each of its regions × every question)
 * and inserts them a chunk at a time, in the caller's transaction, so that
 * backend memory is the parsed spec plus one chunk, however many units the
 * job has. Idempotence and conflicts are decided by the primary key of
 * execguard.jobs and the unique key of executions, never by a read
 * followed by a write.
 */
/* PostgreSQL declares its API with C linkage only when asked to. */
extern "C"
{
#include "postgres.h"

#include "catalog/pg_type_d.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "core_call.h"
#include "executions_table.h"
#include "jsonb_writer.h"
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

/* $1 the plan's header, $2 the canonical spec. */
static EgStatement insert_job = {
	"INSERT INTO execguard.jobs (job_id, spec, max_attempts) "
	"VALUES ($1 ->> 'job_id', $2, ($1 ->> 'max_attempts')::int) "
	"ON CONFLICT (job_id) DO NOTHING RETURNING 1",
	2, {JSONBOID, JSONBOID}, NULL
};

/*
 * A job id submitted before: its row, locked FOR SHARE so that purge_jobs
 * (which marks the row before it deletes anything) cannot take the job
 * while this resubmission inserts its missing units: either the purge
 * waits for this transaction, or this one sees the job purged. Columns:
 * the same spec?, a tombstone of cancel_job?, purged?
 */
static EgStatement existing_job = {
	"SELECT spec IS NOT DISTINCT FROM $2, spec IS NULL, purged_at IS NOT NULL "
	"  FROM execguard.jobs WHERE job_id = $1 ->> 'job_id' FOR SHARE",
	2, {JSONBOID, JSONBOID}, NULL
};

/*
 * One chunk of units, as parallel arrays ($4..$9); the payload is built
 * here rather than by the core so that no unit's JSON text is ever held:
 * jsonb_build_object makes the same jsonb the plan's payload used to be
 * (same keys, a JSON null for a missing provider or params).
 */
static EgStatement insert_units = {
	"WITH created AS ("
	"  INSERT INTO execguard.executions "
	"         (job_id, model_id, region, question_id, max_attempts, payload) "
	"  SELECT $1, u.model_id, u.region, u.question_id, $2, "
	"         pg_catalog.jsonb_build_object('job_id', $1, 'model_id', u.model_id, "
	"             'model_name', u.model_name, 'provider', u.provider, 'region', u.region, "
	"             'question_id', u.question_id, 'prompt', u.prompt, 'params', $3) "
	"    FROM ROWS FROM (pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6), "
	"                    pg_catalog.unnest($7), pg_catalog.unnest($8), pg_catalog.unnest($9)) "
	"         AS u(model_id, model_name, provider, region, question_id, prompt) "
	"  ON CONFLICT (job_id, model_id, region, question_id) DO NOTHING "
	"  RETURNING execution_id, region, model_id), "
	"queued AS (INSERT INTO execguard.queue (execution_id, region, model_id) "
	"           SELECT execution_id, region, model_id FROM created) "
	"SELECT count(*)::int FROM created",
	9, {TEXTOID, INT4OID, JSONBOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
		TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID}, NULL
};

/*
 * A chunk ends at this many units, or once its text passes CHUNK_TEXT_BYTES
 * (a job of big prompts): 10,000 rows per statement is past the point where
 * a bigger statement saves anything, and keeps the chunk's memory small.
 */
#define UNITS_PER_CHUNK 10000
#define CHUNK_TEXT_BYTES (16 * 1024 * 1024)

/* The columns of one chunk; the arrays are UNITS_PER_CHUNK long. */
typedef struct UnitChunk
{
	Datum	   *model_ids;
	Datum	   *model_names;
	Datum	   *providers;
	bool	   *provider_nulls;
	Datum	   *regions;
	Datum	   *question_ids;
	Datum	   *prompts;
	int			n;
} UnitChunk;

/* The next unit to write: models[model], its region-th region, questions[question]. */
typedef struct UnitCursor
{
	size_t		model;
	size_t		region;
	size_t		question;
} UnitCursor;

static Datum
text_datum(eg_slice slice)
{
	return PointerGetDatum(cstring_to_text_with_len(slice.data, (int) slice.len));
}

static Datum
text_array(Datum *elements, bool *nulls, int n)
{
	int			dims[1] = {n};
	int			lbs[1] = {1};

	return PointerGetDatum(construct_md_array(elements, nulls, 1, dims, lbs, TEXTOID, -1, false,
											  TYPALIGN_INT));
}

/*
 * Fills the chunk from the cursor on, in CurrentMemoryContext, and moves
 * the cursor past it. A (model, region) pair's text is made once per chunk
 * and shared by its units (construct_md_array copies each element).
 */
static void
fill_chunk(const eg_job_plan *plan, UnitCursor *cursor, UnitChunk *chunk)
{
	size_t		bytes = 0;
	Datum		model_id = (Datum) 0;
	Datum		model_name = (Datum) 0;
	Datum		provider = (Datum) 0;
	Datum		region = (Datum) 0;
	bool		pair_ready = false;

	chunk->n = 0;
	while (cursor->model < plan->n_models && chunk->n < UNITS_PER_CHUNK &&
		   (chunk->n == 0 || bytes < CHUNK_TEXT_BYTES))
	{
		const eg_model_out *model = &plan->models[cursor->model];
		const eg_question_out *question = &plan->questions[cursor->question];

		if (!pair_ready)
		{
			model_id = text_datum(model->id);
			model_name = text_datum(model->name);
			provider = model->provider.data != NULL ? text_datum(model->provider) : (Datum) 0;
			region = text_datum(plan->regions[model->first_region + cursor->region]);
			pair_ready = true;
		}
		chunk->model_ids[chunk->n] = model_id;
		chunk->model_names[chunk->n] = model_name;
		chunk->providers[chunk->n] = provider;
		chunk->provider_nulls[chunk->n] = model->provider.data == NULL;
		chunk->regions[chunk->n] = region;
		chunk->question_ids[chunk->n] = text_datum(question->id);
		chunk->prompts[chunk->n] = text_datum(question->prompt);
		bytes += question->id.len + question->prompt.len;
		chunk->n++;

		if (++cursor->question == plan->n_questions)
		{
			cursor->question = 0;
			pair_ready = false;
			if (++cursor->region == model->n_regions)
			{
				cursor->region = 0;
				cursor->model++;
			}
		}
	}
}

/*
 * Inserts every unit of the plan, a chunk at a time, inside the caller's
 * SPI connection; returns how many were created (the rest existed). Each
 * chunk's arrays live in chunk_context, reset after the chunk.
 */
static int32
insert_all_units(const eg_job_plan *plan, Datum job_id)
{
	MemoryContext chunk_context = AllocSetContextCreate(CurrentMemoryContext,
														"execguard submit_job chunk",
														ALLOCSET_DEFAULT_SIZES);
	UnitChunk	chunk;
	UnitCursor	cursor = {0, 0, 0};
	Datum		values[9];
	int32		created = 0;

	chunk.model_ids = (Datum *) palloc(sizeof(Datum) * UNITS_PER_CHUNK);
	chunk.model_names = (Datum *) palloc(sizeof(Datum) * UNITS_PER_CHUNK);
	chunk.providers = (Datum *) palloc(sizeof(Datum) * UNITS_PER_CHUNK);
	chunk.provider_nulls = (bool *) palloc(sizeof(bool) * UNITS_PER_CHUNK);
	chunk.regions = (Datum *) palloc(sizeof(Datum) * UNITS_PER_CHUNK);
	chunk.question_ids = (Datum *) palloc(sizeof(Datum) * UNITS_PER_CHUNK);
	chunk.prompts = (Datum *) palloc(sizeof(Datum) * UNITS_PER_CHUNK);

	values[0] = job_id;
	values[1] = Int32GetDatum(plan->max_attempts);
	values[2] = DirectFunctionCall1(jsonb_in, CStringGetDatum(pnstrdup(plan->params.data, plan->params.len)));

	while (cursor.model < plan->n_models)
	{
		MemoryContext caller_context;

		CHECK_FOR_INTERRUPTS();
		caller_context = MemoryContextSwitchTo(chunk_context);
		fill_chunk(plan, &cursor, &chunk);
		values[3] = text_array(chunk.model_ids, NULL, chunk.n);
		values[4] = text_array(chunk.model_names, NULL, chunk.n);
		values[5] = text_array(chunk.providers, chunk.provider_nulls, chunk.n);
		values[6] = text_array(chunk.regions, NULL, chunk.n);
		values[7] = text_array(chunk.question_ids, NULL, chunk.n);
		values[8] = text_array(chunk.prompts, NULL, chunk.n);
		eg_execute(&insert_units, values, NULL, 0);
		created += DatumGetInt32(eg_result_not_null(0, 1));
		SPI_freetuptable(SPI_tuptable);
		MemoryContextSwitchTo(caller_context);
		MemoryContextReset(chunk_context);
	}
	MemoryContextDelete(chunk_context);
	return created;
}

/*
 * The canonical spec, jobs.spec, written as Jsonb straight from the plan
 * (jsonb_writer.h): {"models", "params", "questions", "max_attempts"}, in
 * that order (keys sorted by length, then bytes), each question
 * {"id", "prompt"}. Through jsonb_in its JsonbValue tree was the peak of a
 * big job's memory, about 0.9 KB per question.
 */
#define SPEC_KEYS 4
static const eg_slice kSpecKeys[SPEC_KEYS] = {{"models", 6}, {"params", 6}, {"questions", 9}, {"max_attempts", 12}};
#define SPEC_KEY_BYTES (6 + 6 + 9 + 12)
#define QUESTION_KEYS 2
#define QUESTION_KEY_BYTES (2 + 6)

/* One question's object at "start" (aligned); returns its end. */
static size_t
put_question(char *buffer, size_t start, const eg_question_out *question)
{
	const eg_slice strings[2 * QUESTION_KEYS] = {{"id", 2}, {"prompt", 6}, question->id, question->prompt};
	size_t		entries = start + sizeof(uint32);
	size_t		data = entries + sizeof(JEntry) * 2 * QUESTION_KEYS;
	size_t		end = data;

	put_uint32(buffer, start, QUESTION_KEYS | JB_FOBJECT);
	for (size_t child = 0; child < 2 * QUESTION_KEYS; child++)
	{
		size_t		length = put_string(buffer, &end, strings[child]);

		put_entry(buffer, entries, child, JENTRY_ISSTRING, end - data, length);
	}
	return end;
}

static size_t
put_questions(char *buffer, size_t start, const eg_job_plan *plan)
{
	return put_container_array(buffer, start, plan->n_questions,
							   [plan](char *out, size_t child_start, size_t i) {
								   return put_question(out, child_start, &plan->questions[i]);
							   });
}

/* Copies a container or numeric at align4(end); returns the child's length. */
static size_t
put_aligned(char *buffer, size_t *end, const void *bytes, size_t n)
{
	size_t		start = align4(*end);
	size_t		length;

	memcpy(buffer + start, bytes, n);
	length = start + n - *end;
	*end = start + n;
	return length;
}

static Datum
spec_to_jsonb(const eg_job_plan *plan)
{
	eg_models	models;
	Jsonb	   *params;
	Numeric		max_attempts;
	size_t		bound;
	size_t		entries = VARHDRSZ + sizeof(uint32);
	size_t		data = entries + sizeof(JEntry) * 2 * SPEC_KEYS;
	size_t		end = data;
	size_t		length;
	char	   *buffer;

	models.models = (eg_model_out *) plan->models;
	models.n_models = plan->n_models;
	models.regions = (eg_slice *) plan->regions;
	models.arena = NULL;
	params = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(pnstrdup(plan->params.data,
																				   plan->params.len))));
	max_attempts = DatumGetNumeric(DirectFunctionCall1(int4_numeric, Int32GetDatum(plan->max_attempts)));

	bound = data + SPEC_KEY_BYTES;
	bound += 3 + eg_models_container_bound(&models);
	bound += 3 + VARSIZE(params) - VARHDRSZ;
	bound += 3 + sizeof(uint32) + sizeof(JEntry) * plan->n_questions;
	for (size_t i = 0; i < plan->n_questions; i++)
		bound += 3 + sizeof(uint32) + sizeof(JEntry) * 2 * QUESTION_KEYS + QUESTION_KEY_BYTES +
			plan->questions[i].id.len + plan->questions[i].prompt.len;
	bound += 3 + VARSIZE(max_attempts);
	/* One bound for every container, as jsonb_in checks it (54000). */
	if (bound > JENTRY_OFFLENMASK)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the job's spec would take %zu bytes, more than a jsonb value can hold (%d)",
						bound, JENTRY_OFFLENMASK)));

	buffer = (char *) palloc0(bound);
	put_uint32(buffer, VARHDRSZ, SPEC_KEYS | JB_FOBJECT);
	for (size_t key = 0; key < SPEC_KEYS; key++)
	{
		length = put_string(buffer, &end, kSpecKeys[key]);
		put_entry(buffer, entries, key, JENTRY_ISSTRING, end - data, length);
	}
	/* models */
	length = eg_put_models_container(buffer, align4(end), &models) - end;
	end += length;
	put_entry(buffer, entries, SPEC_KEYS + 0, JENTRY_ISCONTAINER, end - data, length);
	/* params: an object (its root container), or JSON null */
	if (JB_ROOT_IS_OBJECT(params))
	{
		length = put_aligned(buffer, &end, &params->root, VARSIZE(params) - VARHDRSZ);
		put_entry(buffer, entries, SPEC_KEYS + 1, JENTRY_ISCONTAINER, end - data, length);
	}
	else
		put_entry(buffer, entries, SPEC_KEYS + 1, JENTRY_ISNULL, end - data, 0);
	/* questions */
	length = put_questions(buffer, align4(end), plan) - end;
	end += length;
	put_entry(buffer, entries, SPEC_KEYS + 2, JENTRY_ISCONTAINER, end - data, length);
	/* max_attempts */
	length = put_aligned(buffer, &end, max_attempts, VARSIZE(max_attempts));
	put_entry(buffer, entries, SPEC_KEYS + 3, JENTRY_ISNUMERIC, end - data, length);

	Assert(end <= bound);
	SET_VARSIZE(buffer, end);
	return PointerGetDatum(buffer);
}

/*
 * Everything after the plan: the regions check, the job row, the units.
 * Returns whether the job is new and how many units were created.
 */
static bool
submit_planned(const eg_job_plan *plan, const char *job_id, int32 *created)
{
	Datum		job[2];
	bool		job_is_new;

	job[0] = eg_cstring_to_jsonb((char *) plan->header.data);
	job[1] = spec_to_jsonb(plan);

	SPI_connect();

	if (eg_execute(&unknown_region, job, NULL, 1) > 0)
	{
		char	   *region = TextDatumGetCString(eg_result_not_null(0, 1));

		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("region \"%s\" is not in execguard.regions", region),
				 errhint("Insert it into execguard.regions, or correct the spec; execguard never maps a region to another.")));
	}

	job_is_new = eg_execute(&insert_job, job, NULL, 0) > 0;
	if (!job_is_new)
	{
		/* A row that is gone again was a concurrent submit that rolled back. */
		if (eg_execute(&existing_job, job, NULL, 0) != 1)
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
	SPI_freetuptable(SPI_tuptable);

	*created = insert_all_units(plan, CStringGetTextDatum(job_id));

	SPI_finish();
	return job_is_new;
}

extern "C" Datum
execguard_submit_job(PG_FUNCTION_ARGS)
{
	Jsonb	   *spec = PG_GETARG_JSONB_P(0);
	ReturnSetInfo *rsinfo;
	eg_job_plan plan;
	eg_error	error;
	eg_status	status;
	char	   *spec_text;
	char	   *volatile job_id = NULL;
	int32		total;
	int32		duplicates_removed;
	volatile bool job_is_new = false;
	int32		created = 0;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	/* As every function that writes executions (arguments.h, eg_require_schema). */
	(void) eg_executions_table();
	rsinfo = eg_begin_srf(fcinfo);

	spec_text = eg_jsonb_to_cstring(spec);
	eg_core_interruptible();
	status = eg_job_plan_open(eg_slice_of_cstring(spec_text), &plan, &error);
	if (status != EG_OK)
		eg_raise(status, &error);
	pfree(spec_text);
	total = (int32) plan.unit_count;
	duplicates_removed = (int32) plan.duplicates_removed;

	/* The plan is the core's (malloc'd): freed whether or not this errors out. */
	PG_TRY();
	{
		job_id = pnstrdup(plan.job_id.data, plan.job_id.len);
		job_is_new = submit_planned(&plan, job_id, &created);
	}
	PG_FINALLY();
	{
		eg_job_plan_free(&plan);
	}
	PG_END_TRY();

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
