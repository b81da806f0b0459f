/*
 * extension/pg/claim_next.cpp
 *
 * claim_next: a worker's request for up to max_claims executions, from any
 * job. Each call marks the claims of owners that are gone (only when a
 * tracked backend has exited since this session last looked), then grants
 * due pending rows, oldest first from after the newest it claimed last;
 * at least every execguard.rescue_interval, and whenever those do not fill
 * the request, it also rescues expired or orphaned claims, fails those on
 * their last allowed attempt, and grants pending rows from the oldest.
 *
 * The scan of pending rows is made by direct writes (eg_direct_claim_pending,
 * beside claim_pending_statement, its SQL twin), which run unless direct
 * writes are off or do not apply (writer.h); the rescue pass and the owner
 * sweep are SQL statements only. Every decision re-checks the state it
 * acts on, so two callers never both win a row.
 */
/* PostgreSQL declares its API with C linkage only when asked to. */
extern "C"
{
#include "postgres.h"

#include "access/stratnum.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type_d.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "arguments.h"
#include "claim_next.h"
#include "compat.h"
#include "core_call.h"
#include "executions_table.h"
#include "grant.h"
#include "owner.h"
#include "queue_rows.h"
#include "settings.h"
#include "spi_plans.h"
#include "srf.h"
#include "stats.h"
#include "writer.h"
}

extern "C"
{
PG_FUNCTION_INFO_V1(execguard_claim_next);
}

#define MAX_CLAIMS_PER_CALL 10000
/*
 * claim_next's region and model filters: each row scanned is compared with
 * every entry (a parameter array is not hashed), so a filter this long is a
 * mistake, and a much longer one would make every claim scan slow.
 */
#define MAX_FILTER_ENTRIES 1000

#define CLAIMED_COLUMNS \
	"e.execution_id, e.fencing_token, e.attempt, e.job_id, e.model_id, e.region, e.question_id, e.payload"
/* The same, as output columns of a CTE that returned CLAIMED_COLUMNS. */
#define CLAIMED_OUTPUT \
	"execution_id, fencing_token, attempt, job_id, model_id, region, question_id, payload"

/* Optional worker filters of claim_next: $4 regions, $5 models. */
#define CLAIM_FILTERS(E) \
	"AND ($4::text[] IS NULL OR " E ".region = ANY ($4)) AND ($5::text[] IS NULL OR " E ".model_id = ANY ($5)) "

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
	"  RETURNING e.execution_id, e.lease_expires_at, e.region, e.model_id) "
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
	"WHERE q.lease_expires_at IS NULL " AFTER CLAIM_FILTERS("q") \
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
 * Whether rescue_statement has anything to do: every row it can act on
 * (expired, exhausted, or marked by mark_owner_gone) is a queue row whose
 * lease is in the past. One probe of the queue's index of running rows by
 * lease, where rescue_statement costs an executor start of a five-part
 * statement (and, on a session's first call, its planning): most passes
 * find nothing, and an idle worker runs one on every call. A lease that
 * another session marks after this probe is rescued by the next pass, as
 * one that expires a moment later is.
 */
static EgStatement any_expired_lease = {
	"SELECT 1 FROM execguard.queue AS q WHERE q.lease_expires_at < pg_catalog.now() LIMIT 1",
	0, {InvalidOid}, NULL
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

/* claim_next's regions or models filter: canonical text elements, or any. */
typedef struct EgKeyFilter
{
	bool		any;
	Datum	   *elements;
	int			n;
} EgKeyFilter;

static bool
filter_admits(const EgKeyFilter *filter, Datum value)
{
	const text *key = DatumGetTextPP(value);
	size_t		len = VARSIZE_ANY_EXHDR(key);

	if (filter->any)
		return true;
	for (int i = 0; i < filter->n; i++)
	{
		const text *element = DatumGetTextPP(filter->elements[i]);

		if (VARSIZE_ANY_EXHDR(element) == len && memcmp(VARDATA_ANY(element), VARDATA_ANY(key), len) == 0)
			return true;
	}
	return false;
}

/*
 * Above this many (region, model) pairs in a filter of both, the pairs are
 * not sought one by one: the scans are by region, and each row's model is
 * checked.
 */
#define MAX_PAIR_SCANS 64

/* One index range of pending queue rows, oldest first, for the merge. */
typedef struct PendingScan
{
	IndexScanDesc scan;
	TupleTableSlot *entry;		/* the current queue row of the range */
	bool		done;
} PendingScan;

/*
 * Opens the range of pending queue rows with execution_id > after in index
 * indexid, whose leading columns equal region and then model where those
 * are given ((Datum) 0 where not: a text datum is never 0), and reads its
 * first row.
 */
static void
begin_pending_scan(EgWriter *writer, PendingScan *scan, Oid indexid, Datum region, Datum model, int64 after)
{
	Relation	index = eg_open_index(writer->queue_result_rel, indexid);
	ScanKeyData keys[3];
	int			nkeys = 0;

	for (int i = 0; i < 2; i++)
	{
		Datum		value = i == 0 ? region : model;

		if (value == (Datum) 0)
			continue;
		ScanKeyEntryInitialize(&keys[nkeys], 0, nkeys + 1, BTEqualStrategyNumber, InvalidOid,
							   index->rd_indcollation[nkeys], F_TEXTEQ, value);
		nkeys++;
	}
	ScanKeyInit(&keys[nkeys], nkeys + 1, BTGreaterStrategyNumber, F_INT8GT, Int64GetDatum(after));
	nkeys++;
	scan->scan = eg_index_beginscan(writer->queue, index, writer->snapshot, nkeys, 0);
	scan->entry = table_slot_create(writer->queue, &writer->estate->es_tupleTable);
	index_rescan(scan->scan, keys, nkeys, NULL, 0);
	scan->done = !index_getnext_slot(scan->scan, ForwardScanDirection, scan->entry);
}

/*
 * The index ranges that hold exactly the pending rows a filter admits
 * (execguard.queue's partial indexes of pending rows): all of them; one
 * range per region, per model, or per (region, model) pair. Returns how
 * many were opened into *scans.
 */
static int
begin_pending_scans(EgWriter *writer, const EgKeyFilter *regions, const EgKeyFilter *models, int64 after,
					PendingScan **scans)
{
	const EgExecutionsTable *table = writer->table;
	bool		pairs = !regions->any && !models->any && regions->n * models->n <= MAX_PAIR_SCANS;
	int			n = regions->any ? (models->any ? 1 : models->n) : (pairs ? regions->n * models->n : regions->n);
	int			k = 0;

	*scans = (PendingScan *) palloc(sizeof(PendingScan) * (n + 1));
	if (regions->any && models->any)
		begin_pending_scan(writer, &(*scans)[k++], table->queue_pending_index, (Datum) 0, (Datum) 0, after);
	else if (regions->any)
		for (int m = 0; m < models->n; m++)
			begin_pending_scan(writer, &(*scans)[k++], table->queue_pending_model_index, (Datum) 0,
							   models->elements[m], after);
	else if (pairs)
		for (int r = 0; r < regions->n; r++)
			for (int m = 0; m < models->n; m++)
				begin_pending_scan(writer, &(*scans)[k++], table->queue_pending_region_model_index,
								   regions->elements[r], models->elements[m], after);
	else
		for (int r = 0; r < regions->n; r++)
			begin_pending_scan(writer, &(*scans)[k++], table->queue_pending_region_index, regions->elements[r],
							   (Datum) 0, after);
	Assert(k == n);
	return n;
}

/* The range whose current row is the oldest, or -1 when all are done. */
static int
oldest_pending_scan(PendingScan *scans, int n, int64 *execution_id)
{
	int			oldest = -1;

	for (int i = 0; i < n; i++)
	{
		bool		isnull;
		int64		id;

		if (scans[i].done)
			continue;
		id = DatumGetInt64(slot_getattr(scans[i].entry, EG_QUEUE_EXECUTION_ID, &isnull));
		if (oldest < 0 || id < *execution_id)
		{
			oldest = i;
			*execution_id = id;
		}
	}
	return oldest;
}

/*
 * Grants the pending row of queue row entry if it is due, admitted by the
 * filters and nobody else holds it; false if it was not granted.
 */
static bool
claim_pending_entry(EgWriter *writer, TupleTableSlot *entry, const EgGrant *grant, const EgKeyFilter *regions,
					const EgKeyFilter *models, TimestampTz now, Datum running)
{
	bool		isnull;
	Datum		not_before;

	/* The version the snapshot sees is pending, and its execution too. */
	slot_getattr(entry, EG_QUEUE_LEASE_EXPIRES_AT, &isnull);
	if (!isnull)
		return false;
	if (!eg_writer_fetch(writer, DatumGetInt64(slot_getattr(entry, EG_QUEUE_EXECUTION_ID, &isnull))) ||
		eg_row_status(writer->row) != EG_STATUS_PENDING)
		return false;
	not_before = eg_column(writer->row, EG_COL_NOT_BEFORE, &isnull);
	if (!isnull && DatumGetTimestampTz(not_before) > now)
		return false;
	/* Checked on the execution, whatever range the row came from. */
	if (!filter_admits(regions, eg_column_not_null(writer->row, EG_COL_REGION)) ||
		!filter_admits(models, eg_column_not_null(writer->row, EG_COL_MODEL_ID)))
		return false;

	eg_writer_prepare(writer);
	eg_set_column(writer, EG_COL_STATUS, running, false);
	eg_set_column(writer, EG_COL_ATTEMPT,
				  Int32GetDatum(DatumGetInt32(eg_prepared_column(writer, EG_COL_ATTEMPT)) + 1), false);
	eg_set_column(writer, EG_COL_FENCING_TOKEN,
				  Int64GetDatum(DatumGetInt64(eg_prepared_column(writer, EG_COL_FENCING_TOKEN)) + 1), false);
	eg_set_column(writer, EG_COL_WORKER, grant->worker, grant->worker_null);
	eg_set_column(writer, EG_COL_OWNER_PID, grant->owner_pid, grant->owner_null);
	eg_set_column(writer, EG_COL_OWNER_BACKEND_START, grant->owner_backend_start, grant->owner_null);
	eg_set_column(writer, EG_COL_LEASE_EXPIRES_AT, TimestampTzGetDatum(grant->lease_expires_at), false);
	eg_set_column(writer, EG_COL_NOT_BEFORE, (Datum) 0, true);
	eg_set_column(writer, EG_COL_STARTED_AT, TimestampTzGetDatum(now), false);
	eg_set_column(writer, EG_COL_FINISHED_AT, (Datum) 0, true);
	if (eg_writer_update(writer, false) != EG_WRITE_DONE)
		return false;
	eg_queue_set(writer, DatumGetInt64(eg_prepared_column(writer, EG_COL_EXECUTION_ID)), false,
				 grant->lease_expires_at, &entry->tts_tid);
	return true;
}

/*
 * claim_pending_statement by direct writes: grants up to max_claims due
 * pending rows with execution_id > after, oldest first, skipping rows
 * another transaction holds. Each granted row goes to store as an
 * execguard.claimed_execution; returns the number granted and sets *newest
 * to the highest id granted.
 *
 * Rows are taken in the order of the queue's indexes of pending rows: one
 * index range for an unfiltered call, else one per region, model or
 * (region, model) pair of the filters, merged oldest first, so that a
 * filtered call never reads the pending rows of what it does not serve.
 * Each row is decided on the execution's row. A row that another
 * transaction holds, or that changed since the scan's snapshot (claimed,
 * cancelled, or claimed and released again), is skipped, where FOR UPDATE
 * SKIP LOCKED would lock and re-check the newest version of the last kind:
 * such a row is due and is taken by a later call.
 */
static uint64
eg_direct_claim_pending(EgWriter *writer, int32 max_claims, const EgGrant *grant,
						const EgKeyFilter *regions, const EgKeyFilter *models, int64 after,
						Tuplestorestate *store, TupleDesc store_desc, int64 *newest)
{
	static const EgColumn claimed_columns[] = {
		EG_COL_EXECUTION_ID, EG_COL_FENCING_TOKEN, EG_COL_ATTEMPT, EG_COL_JOB_ID,
		EG_COL_MODEL_ID, EG_COL_REGION, EG_COL_QUESTION_ID, EG_COL_PAYLOAD
	};
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	Datum		running = CStringGetTextDatum("running");
	PendingScan *scans;
	int			nscans = begin_pending_scans(writer, regions, models, after, &scans);
	int64		previous = after;
	uint64		claimed = 0;

	while (claimed < (uint64) max_claims)
	{
		int64		execution_id = 0;
		int			oldest = oldest_pending_scan(scans, nscans, &execution_id);
		bool		granted;
		Datum		out[lengthof(claimed_columns)];
		bool		out_null[lengthof(claimed_columns)];

		if (oldest < 0)
			break;
		CHECK_FOR_INTERRUPTS();
		/* A filter that names an element twice has two ranges with the same rows. */
		granted = execution_id != previous &&
			claim_pending_entry(writer, scans[oldest].entry, grant, regions, models, now, running);
		previous = execution_id;
		if (granted)
		{
			for (size_t c = 0; c < lengthof(claimed_columns); c++)
			{
				AttrNumber	attnum = writer->table->attnum[claimed_columns[c]];

				out[c] = writer->values[attnum - 1];
				out_null[c] = writer->isnull[attnum - 1];
			}
			tuplestore_putvalues(store, store_desc, out, out_null);
			claimed++;
			if (execution_id > *newest)
				*newest = execution_id;
		}
		scans[oldest].done = !index_getnext_slot(scans[oldest].scan, ForwardScanDirection, scans[oldest].entry);
	}
	for (int i = 0; i < nscans; i++)
		index_endscan(scans[i].scan);
	return claimed;
}

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

void
eg_claim_next_from_oldest(void)
{
	pending_scan_after = 0;
}

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
		if (eg_execute(&any_expired_lease, NULL, NULL, 1) > 0)
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
