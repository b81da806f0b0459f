/*
 * extension/pg/claim_execution.cpp
 *
 * claim_execution: a worker's claim of one key (job_id, model_id, region,
 * question_id) before it runs it, which is what makes each inference unit
 * run once. A key never seen is created running; a pending one is granted;
 * a running one is a duplicate unless its lease expired or its owner is
 * gone, when it is rescued, or failed on its last allowed attempt.
 *
 * Every decision is one atomic statement whose WHERE clause re-checks the
 * state it acts on (under READ COMMITTED, PostgreSQL re-evaluates it on the
 * newest row version), so two callers can never both win: the unique key
 * decides creation, and the row lock plus the status/fencing_token
 * predicates decide every transition. No advisory locks: all of it works
 * behind a transaction-mode pooler.
 *
 * The key's row is read directly (key_lookup.h), and a new key is created
 * by direct writes (eg_direct_insert_key, beside insert_key, its SQL twin,
 * which runs instead whenever the direct writes do not apply: writer.h);
 * the other decisions are SQL statements. The direct code is plain
 * C-style: nothing with a destructor, so an error raised in it unwinds
 * cleanly; the relation and index locks, buffer pins and the active
 * snapshot are released by the transaction's abort.
 *
 * Outcomes of claim_execution: claimed and reclaimed are grants (execute);
 * everything else means "do not execute". Only a grant returns the fencing
 * token, which is the capability to heartbeat, complete, fail or release.
 */
/* PostgreSQL declares its API with C linkage only when asked to. */
extern "C"
{
#include "postgres.h"

#include "access/stratnum.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/pg_type_d.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "arguments.h"
#include "compat.h"
#include "core_call.h"
#include "executions_table.h"
#include "grant.h"
#include "key_lookup.h"
#include "owner.h"
#include "queue_rows.h"
#include "spi_plans.h"
#include "settings.h"
#include "stats.h"
#include "writer.h"
}

extern "C"
{
PG_FUNCTION_INFO_V1(execguard_claim_execution);
}

/* A claim that keeps losing races this often reports it instead of spinning. */
#define MAX_CLAIM_ROUNDS 32

/* ---------------------------------------------------------------------- */
/* A new key: insert_key and its direct twin                              */
/* ---------------------------------------------------------------------- */

/*
 * A key never submitted is created running (only with
 * execguard.claims_require_submitted_job off), unless its job was cancelled
 * or purged.
 * FOR SHARE on the job row makes this wait for a concurrent cancel_job,
 * which locks that row before it cancels the job's executions (in a later
 * statement, so with a snapshot that sees this row once we commit). The
 * twin of eg_direct_insert_key, which runs instead unless direct writes
 * are off or do not apply (writer.h).
 */
static EgStatement insert_key = {
	"WITH job AS (SELECT max_attempts, cancelled_at, purged_at FROM execguard.jobs WHERE job_id = $1 FOR SHARE), "
	"created AS ("
	"  INSERT INTO execguard.executions AS e "
	"         (job_id, model_id, region, question_id, status, attempt, fencing_token, "
	"          worker, owner_pid, owner_backend_start, lease_expires_at, started_at, max_attempts) "
	"  SELECT $1, $2, $3, $4, 'running', 1, 1, $5, $6, $7, pg_catalog.now() + $8, pg_catalog.now(), "
	"         coalesce((SELECT max_attempts FROM job), 3) "
	"   WHERE NOT EXISTS (SELECT 1 FROM job WHERE cancelled_at IS NOT NULL OR purged_at IS NOT NULL) "
	"  ON CONFLICT (job_id, model_id, region, question_id) DO NOTHING "
	"  RETURNING execution_id, fencing_token, attempt, lease_expires_at, region, model_id), "
	"queued AS (INSERT INTO execguard.queue (execution_id, lease_expires_at, region, model_id) "
	"           SELECT execution_id, lease_expires_at, region, model_id FROM created) "
	"SELECT execution_id, fencing_token, attempt FROM created",
	8, {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT4OID, TIMESTAMPTZOID, INTERVALOID}, NULL
};

/* eg_set_column for a new row, marking the column as given. */
static inline void
set_new_column(EgWriter *writer, bool *given, EgColumn column, Datum value, bool isnull)
{
	eg_set_column(writer, column, value, isnull);
	given[writer->table->attnum[column] - 1] = true;
}

/*
 * The job's row, locked FOR SHARE as insert_key's SQL locks it, so that a
 * concurrent cancel_job (which locks it FOR UPDATE before it cancels the
 * job's executions) waits for this insert, or this insert for the cancel.
 * False when the job has no row.
 */
static bool
lock_job(EgWriter *writer, Relation jobs, Datum job_id, int32 *max_attempts, bool *cancelled, bool *purged)
{
	const EgExecutionsTable *table = writer->table;
	Relation	pkey = index_open(table->jobs_pkey_index, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(jobs, &writer->estate->es_tupleTable);
	IndexScanDesc scan = eg_index_beginscan(jobs, pkey, writer->snapshot, 1, 0);
	ScanKeyData key;
	bool		found;

	ScanKeyEntryInitialize(&key, 0, 1, BTEqualStrategyNumber, InvalidOid, pkey->rd_indcollation[0], F_TEXTEQ,
						   job_id);
	index_rescan(scan, &key, 1, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	if (found)
	{
		TM_FailureData failure;
		ItemPointerData tid = slot->tts_tid;

		switch (table_tuple_lock(jobs, &tid, writer->snapshot, slot, writer->estate->es_output_cid,
								 LockTupleShare, LockWaitBlock, TUPLE_LOCK_FLAG_FIND_LAST_VERSION, &failure))
		{
			case TM_Ok:
				break;
			case TM_Deleted:
				if (IsolationUsesXactSnapshot())
					eg_concurrent_update_error(true);
				found = false;
				break;
			case TM_SelfModified:
				/* Changed later in this command: FOR SHARE skips the row too. */
				found = false;
				break;
			default:
				elog(ERROR, "execguard: unexpected result locking the row of a job");
		}
	}
	if (found)
	{
		bool		isnull;
		Datum		locked_id = slot_getattr(slot, table->jobs_job_id, &isnull);

		/* The locked version may be newer than the one found: re-check its key, as FOR SHARE does. */
		found = !isnull && DatumGetBool(DirectFunctionCall2Coll(texteq, pkey->rd_indcollation[0], locked_id,
																job_id));
		if (found)
		{
			Datum		limit = slot_getattr(slot, table->jobs_max_attempts, &isnull);

			/* 1 to 100 by the jobs table's CHECK: within execguard.attempt_limit. */
			*max_attempts = isnull ? EG_DEFAULT_MAX_ATTEMPTS : DatumGetInt32(limit);
			slot_getattr(slot, table->jobs_cancelled_at, &isnull);
			*cancelled = !isnull;
			slot_getattr(slot, table->jobs_purged_at, &isnull);
			*purged = !isnull;
		}
	}
	index_endscan(scan);
	/* Locks are kept to the end of the transaction, as for a statement. */
	index_close(pkey, NoLock);
	return found;
}

/* Prepares the open index indexid of the table to arbitrate ON CONFLICT. */
static void
prepare_arbiter(EgWriter *writer, Oid indexid)
{
	int			i = eg_index_position(writer->result_rel, indexid);
	IndexInfo  *info = writer->result_rel->ri_IndexRelationInfo[i];

	if (info->ii_UniqueOps == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(writer->estate->es_query_cxt);

		BuildSpeculativeIndexInfo(writer->result_rel->ri_IndexRelationDescs[i], info);
		MemoryContextSwitchTo(old);
	}
}

/*
 * What INSERT ... ON CONFLICT DO NOTHING does under REPEATABLE READ and
 * SERIALIZABLE when the conflicting row is one the snapshot cannot see:
 * the caller could not have known of it, so it must retry.
 */
static void
check_conflict_visible(EgWriter *writer, ItemPointer conflict)
{
	TupleTableSlot *existing = writer->row;
	bool		isnull;

	if (!IsolationUsesXactSnapshot())
		return;
	if (!table_tuple_fetch_row_version(writer->rel, conflict, SnapshotAny, existing))
		elog(ERROR, "execguard: failed to fetch the conflicting row of a new key");
	if (!table_tuple_satisfies_snapshot(writer->rel, existing, writer->snapshot) &&
		!TransactionIdIsCurrentTransactionId(
			DatumGetTransactionId(slot_getsysattr(existing, MinTransactionIdAttributeNumber, &isnull))))
		eg_concurrent_update_error(false);
}

typedef enum EgInsertResult
{
	EG_INSERT_DONE,				/* the key is created running */
	EG_INSERT_EXISTS,			/* another transaction created the key first */
	EG_INSERT_JOB_CANCELLED,	/* the key's job is cancelled: nothing written */
	EG_INSERT_JOB_PURGED,		/* the key's job is purged: nothing written */
	EG_INSERT_USE_SQL			/* execguard.jobs has row-level security: nothing done */
} EgInsertResult;

/*
 * insert_key by direct writes: creates the key running with attempt 1 and
 * fencing token 1, granted as *grant says, unless it exists or its job is
 * cancelled or purged; the job's row, when there is one, is locked FOR SHARE first
 * and gives max_attempts (3 without a job). Like INSERT ... ON CONFLICT DO
 * NOTHING it waits for a transaction that is inserting the same key, and
 * under REPEATABLE READ and SERIALIZABLE a key committed since the
 * transaction's snapshot is a serialization failure. *execution_id is the
 * new row's id.
 */
static EgInsertResult
eg_direct_insert_key(EgWriter *writer, const Datum *key, const EgGrant *grant, int64 *execution_id)
{
	static const EgColumn key_columns[] = {EG_COL_JOB_ID, EG_COL_MODEL_ID, EG_COL_REGION, EG_COL_QUESTION_ID};
	const EgExecutionsTable *table = writer->table;
	TupleDesc	desc = RelationGetDescr(writer->rel);
	TupleTableSlot *slot = writer->update;
	EState	   *estate = writer->estate;
	List	   *arbiters = list_make1_oid(table->key_index);
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	ExprState **defaults;
	ExprContext *econtext;
	bool	   *given;
	Relation	jobs;
	int32		max_attempts = EG_DEFAULT_MAX_ATTEMPTS;
	bool		cancelled = false;
	bool		purged = false;

	jobs = table_open(table->jobs_relid, RowShareLock);
	if (jobs->rd_rel->relrowsecurity)
	{
		table_close(jobs, NoLock);
		return EG_INSERT_USE_SQL;
	}
	lock_job(writer, jobs, key[0], &max_attempts, &cancelled, &purged);
	table_close(jobs, NoLock);
	if (purged)
		return EG_INSERT_JOB_PURGED;
	if (cancelled)
		return EG_INSERT_JOB_CANCELLED;

	/* The new row; the columns insert_key leaves out get their defaults. */
	defaults = eg_table_defaults(writer->rel, estate);
	ResetPerTupleExprContext(estate);
	econtext = GetPerTupleExprContext(estate);
	given = (bool *) palloc0(sizeof(bool) * desc->natts);
	ExecClearTuple(slot);
	for (size_t c = 0; c < lengthof(key_columns); c++)
		set_new_column(writer, given, key_columns[c], key[c], false);
	set_new_column(writer, given, EG_COL_STATUS, CStringGetTextDatum("running"), false);
	set_new_column(writer, given, EG_COL_ATTEMPT, Int32GetDatum(1), false);
	set_new_column(writer, given, EG_COL_FENCING_TOKEN, Int64GetDatum(1), false);
	set_new_column(writer, given, EG_COL_WORKER, grant->worker, grant->worker_null);
	set_new_column(writer, given, EG_COL_OWNER_PID, grant->owner_pid, grant->owner_null);
	set_new_column(writer, given, EG_COL_OWNER_BACKEND_START, grant->owner_backend_start, grant->owner_null);
	set_new_column(writer, given, EG_COL_LEASE_EXPIRES_AT, TimestampTzGetDatum(grant->lease_expires_at), false);
	set_new_column(writer, given, EG_COL_STARTED_AT, TimestampTzGetDatum(now), false);
	set_new_column(writer, given, EG_COL_MAX_ATTEMPTS, Int32GetDatum(max_attempts), false);
	for (int i = 0; i < desc->natts; i++)
	{
		if (given[i])
			continue;
		writer->values[i] = (Datum) 0;
		writer->isnull[i] = true;
		if (defaults[i] != NULL)
			writer->values[i] = ExecEvalExprSwitchContext(defaults[i], econtext, &writer->isnull[i]);
	}
	ExecStoreVirtualTuple(slot);
	if (desc->constr != NULL)
		ExecConstraints(writer->result_rel, slot, estate);

	/* INSERT ... ON CONFLICT (the key) DO NOTHING, as ExecInsert runs it. */
	prepare_arbiter(writer, table->key_index);
	for (;;)
	{
		ItemPointerData conflict;
		bool		spec_conflict = false;
		TransactionId xid;
		uint32		token;

		CHECK_FOR_INTERRUPTS();
		/* Waits for a transaction inserting the key; false if it committed. */
		if (!eg_check_index_constraints(writer->result_rel, slot, estate, &conflict, arbiters))
		{
			check_conflict_visible(writer, &conflict);
			return EG_INSERT_EXISTS;
		}
		xid = GetCurrentTransactionId();
		token = SpeculativeInsertionLockAcquire(xid);
		table_tuple_insert_speculative(writer->rel, slot, estate->es_output_cid, 0, NULL, token);
		list_free(eg_insert_index_tuples(writer->result_rel, slot, estate, true, &spec_conflict, arbiters));
		table_tuple_complete_speculative(writer->rel, slot, token, !spec_conflict);
		SpeculativeInsertionLockRelease(xid);
		if (!spec_conflict)
			break;
		/* Another transaction inserted the key meanwhile: decide again. */
	}

	*execution_id = DatumGetInt64(eg_prepared_column(writer, EG_COL_EXECUTION_ID));
	/* A new execution has no queue row: nobody else can have written one. */
	eg_queue_version(writer, *execution_id, false, grant->lease_expires_at);
	eg_queue_insert(writer);
	return EG_INSERT_DONE;
}

/* ---------------------------------------------------------------------- */
/* An existing key: grant it, rescue it, or fail it                       */
/* ---------------------------------------------------------------------- */

static EgStatement grant_pending = {
	"WITH granted AS ("
	"  UPDATE execguard.executions AS e SET " GRANT_SET("$2", "$3", "$4", "$5")
	"   WHERE execution_id = $1 AND status = 'pending' "
	"     AND (not_before IS NULL OR not_before <= pg_catalog.now()) "
	"  RETURNING execution_id, fencing_token, attempt, lease_expires_at, region, model_id), "
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
	"  RETURNING execution_id, fencing_token, attempt, lease_expires_at, region, model_id), "
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

/* Why insert_key wrote nothing for a key that has no row: true = purged. */
static EgStatement job_refusal = {
	"SELECT purged_at IS NOT NULL FROM execguard.jobs "
	" WHERE job_id = $1 AND (cancelled_at IS NOT NULL OR purged_at IS NOT NULL)",
	1, {TEXTOID}, NULL
};

/* ---------------------------------------------------------------------- */
/* claim_execution                                                        */
/* ---------------------------------------------------------------------- */

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

/* A key that no submitted job has (or had: its job was purged). */
static void
unknown_key(ClaimResult *out)
{
	out->outcome = "unknown";
	eg_count(EG_CLAIMS_UNKNOWN, 1);
}

/*
 * Creates a key never seen, running for this claim, unless its job is
 * cancelled or purged: by direct writes (eg_direct_insert_key), or by insert_key
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
			case EG_INSERT_JOB_PURGED:
				unknown_key(out);
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
		if (eg_execute(&job_refusal, key, NULL, 1) > 0)
		{
			if (DatumGetBool(eg_result_not_null(0, 1)))
				unknown_key(out);
			else
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
			/*
			 * Only submit_job creates keys, unless a superuser allowed it. A
			 * key of a cancelled job is 'cancelled' either way (a tombstone
			 * of cancel_job, or a key outside a cancelled job's spec).
			 */
			if (eg_claims_require_submitted_job)
			{
				eg_connect_spi(spi);
				if (eg_execute(&job_refusal, key, NULL, 1) > 0 && !DatumGetBool(eg_result_not_null(0, 1)))
					cancelled_new(out);
				else
					unknown_key(out);
				return;
			}
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
