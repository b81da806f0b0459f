/*
 * extension/pg/direct_writes.cpp
 *
 * See direct_writes.h; the writer they use is writer.h. Plain C-style
 * code: nothing with a destructor, so an error raised below unwinds
 * cleanly; the relation and index locks, buffer pins and the active
 * snapshot are released by the transaction's abort.
 */
/* PostgreSQL declares its API with C linkage only when asked to. */
extern "C"
{
#include "postgres.h"

#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/bitmapset.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "direct_writes.h"
#include "queue_rows.h"
#include "settings.h"
}

/* ---------------------------------------------------------------------- */
/* The writes                                                             */
/* ---------------------------------------------------------------------- */

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
lock_job(EgWriter *writer, Relation jobs, Datum job_id, int32 *max_attempts, bool *cancelled)
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

EgInsertResult
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

	jobs = table_open(table->jobs_relid, RowShareLock);
	if (jobs->rd_rel->relrowsecurity)
	{
		table_close(jobs, NoLock);
		return EG_INSERT_USE_SQL;
	}
	lock_job(writer, jobs, key[0], &max_attempts, &cancelled);
	table_close(jobs, NoLock);
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
