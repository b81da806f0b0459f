/*
 * extension/pg/writer.cpp
 *
 * The writer of writer.h. Plain C-style code: nothing with a destructor,
 * so an error raised below unwinds cleanly; the relation and index locks,
 * buffer pins and the active snapshot are released by the transaction's
 * abort.
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
#include "commands/trigger.h"
#include "executor/executor.h"
#include "nodes/bitmapset.h"
#include "nodes/parsenodes.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "compat.h"
#include "settings.h"
#include "writer.h"
}

/*
 * The columns any direct write may change. The executor uses the set to
 * tell each index whether an update left its key unchanged (none of these
 * is a key column of the primary key or of executions_key), which lets
 * btree delete old versions of the same key bottom-up instead of splitting
 * pages.
 */
static const EgColumn written_columns[] = {
	EG_COL_STATUS, EG_COL_ATTEMPT, EG_COL_FENCING_TOKEN, EG_COL_WORKER, EG_COL_OWNER_PID,
	EG_COL_OWNER_BACKEND_START, EG_COL_LEASE_EXPIRES_AT, EG_COL_NOT_BEFORE, EG_COL_RESULT,
	EG_COL_ERROR, EG_COL_STARTED_AT, EG_COL_FINISHED_AT
};

/*
 * Does a statement do anything on this table that the direct writes would
 * skip? The foreign key from queue to executions puts triggers on both
 * tables (their other table is `partner`), which do nothing for the writes
 * here (queue_rows.h). Any other trigger, including those of a foreign key
 * a DBA added, sends the write to SQL.
 */
static bool
has_other_triggers(Relation rel, Oid partner)
{
	if (rel->trigdesc == NULL)
		return false;
	for (int i = 0; i < rel->trigdesc->numtriggers; i++)
	{
		const Trigger *trigger = &rel->trigdesc->triggers[i];

		if (!trigger->tgisinternal || RI_FKey_trigger_type(trigger->tgfoid) == RI_TRIGGER_NONE ||
			trigger->tgconstrrelid != partner)
			return true;
	}
	return false;
}

/*
 * What of ExecInsert's and ExecUpdate's work the direct writes do not do,
 * each sending the write to the SQL statement, which does it (or refuses
 * as SQL would): a relation that is not a plain table, triggers, rules,
 * row-level security, generated columns. The CHECK constraints, unique
 * and partial indexes and replica identity are checked by the direct
 * writes themselves (writer.h).
 */
static bool
needs_sql(Relation rel, Oid partner)
{
	return rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relispartition ||
		has_other_triggers(rel, partner) || rel->rd_rules != NULL || rel->rd_rel->relrowsecurity ||
		eg_has_generated_columns(rel->rd_att->constr);
}

void
eg_concurrent_update_error(bool deleted)
{
	ereport(ERROR,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 errmsg(deleted ? "could not serialize access due to concurrent delete" :
					"could not serialize access due to concurrent update")));
}

/*
 * What ExecConstraints and ExecInsertIndexTuples would otherwise prepare
 * on first use in every call: the CHECK constraints, planned once per
 * backend (eg_table_checks), and the partial indexes' predicates, which the
 * relcache keeps planned already (ExecPrepareQual would plan them again).
 */
static void
prepare_index_predicates(ResultRelInfo *result_rel, EState *estate)
{
	MemoryContext old;

	old = MemoryContextSwitchTo(estate->es_query_cxt);
	for (int i = 0; i < result_rel->ri_NumIndices; i++)
	{
		IndexInfo  *index = result_rel->ri_IndexRelationInfo[i];

		if (index->ii_Predicate != NIL)
			index->ii_PredicateState = ExecInitQual(index->ii_Predicate, NULL);
	}
	MemoryContextSwitchTo(old);
}

static void
prepare_checks(EgWriter *writer)
{
	if (writer->rel->rd_att->constr != NULL && writer->rel->rd_att->constr->num_check > 0)
		EG_RESULT_REL_CHECKS(writer->result_rel) = eg_table_checks(writer->rel, writer->estate);
	prepare_index_predicates(writer->result_rel, writer->estate);
}

bool
eg_writer_begin(EgWriter *writer)
{
	Bitmapset  *updated = NULL;
	List	   *range_table;
	List	   *perminfos = NIL;

	/*
	 * A read-only transaction (or a standby) gets SQL's refusal, as the
	 * statements would: "cannot execute UPDATE in a read-only transaction".
	 */
	if (!eg_direct_writes || XactReadOnly)
		return false;
	writer->table = eg_executions_table();
	writer->rel = table_open(writer->table->relid, RowExclusiveLock);
	writer->queue = table_open(writer->table->queue_relid, RowExclusiveLock);

	/*
	 * Taking the locks processed any invalidation that arrived since the
	 * cache was read: read it again, so that the column numbers used to
	 * fill a row are the ones of the table now open.
	 */
	writer->table = eg_executions_table();
	if (writer->table->relid != RelationGetRelid(writer->rel) ||
		writer->table->queue_relid != RelationGetRelid(writer->queue))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("execguard's tables were replaced during the call"),
				 errhint("Retry the call.")));
	if (needs_sql(writer->rel, writer->table->queue_relid) || needs_sql(writer->queue, writer->table->relid))
	{
		/* The SQL statement that runs instead takes the same locks. */
		table_close(writer->queue, NoLock);
		table_close(writer->rel, NoLock);
		return false;
	}
	CheckCmdReplicaIdentity(writer->rel, CMD_UPDATE);
	CheckCmdReplicaIdentity(writer->queue, CMD_UPDATE);
	CheckCmdReplicaIdentity(writer->queue, CMD_DELETE);

	for (size_t i = 0; i < lengthof(written_columns); i++)
		updated = bms_add_member(updated, writer->table->attnum[written_columns[i]] -
								 FirstLowInvalidHeapAttributeNumber);

	writer->estate = CreateExecutorState();
	range_table = list_make2(eg_updated_relation_entry(writer->rel, updated, &perminfos),
							 eg_updated_relation_entry(writer->queue,
													   bms_make_singleton(EG_QUEUE_LEASE_EXPIRES_AT -
																		  FirstLowInvalidHeapAttributeNumber),
													   &perminfos));
	eg_init_range_table(writer->estate, range_table, perminfos);
	writer->result_rel = makeNode(ResultRelInfo);
	InitResultRelInfo(writer->result_rel, writer->rel, 1, NULL, 0);
	ExecOpenIndices(writer->result_rel, false);
	prepare_checks(writer);
	writer->queue_result_rel = makeNode(ResultRelInfo);
	InitResultRelInfo(writer->queue_result_rel, writer->queue, 2, NULL, 0);
	ExecOpenIndices(writer->queue_result_rel, false);
	prepare_index_predicates(writer->queue_result_rel, writer->estate);

	/*
	 * As SPI runs a statement of a volatile function: the effects of earlier
	 * commands become visible, and the snapshot is new under READ COMMITTED
	 * (the transaction's, with this command's id, under REPEATABLE READ).
	 */
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());
	UpdateActiveSnapshotCommandId();
	writer->snapshot = GetActiveSnapshot();
	writer->estate->es_snapshot = writer->snapshot;
	writer->estate->es_output_cid = GetCurrentCommandId(true);

	writer->row = table_slot_create(writer->rel, &writer->estate->es_tupleTable);
	writer->update = ExecInitExtraTupleSlot(writer->estate, RelationGetDescr(writer->rel), &TTSOpsVirtual);
	writer->values = writer->update->tts_values;
	writer->isnull = writer->update->tts_isnull;
	writer->pkey = NULL;
	writer->pkey_scan = NULL;
	writer->queue_row = table_slot_create(writer->queue, &writer->estate->es_tupleTable);
	writer->queue_update = ExecInitExtraTupleSlot(writer->estate, RelationGetDescr(writer->queue),
												  &TTSOpsVirtual);
	writer->queue_pkey_scan = NULL;
	return true;
}

void
eg_writer_end(EgWriter *writer)
{
	if (writer->pkey_scan != NULL)
		index_endscan(writer->pkey_scan);
	if (writer->queue_pkey_scan != NULL)
		index_endscan(writer->queue_pkey_scan);
	ExecCloseIndices(writer->queue_result_rel);
	ExecCloseIndices(writer->result_rel);
	ExecResetTupleTable(writer->estate->es_tupleTable, false);
	FreeExecutorState(writer->estate);
	PopActiveSnapshot();
	/* Locks are kept to the end of the transaction, as for a statement. */
	table_close(writer->queue, NoLock);
	table_close(writer->rel, NoLock);
}

int
eg_index_position(ResultRelInfo *result_rel, Oid indexid)
{
	for (int i = 0; i < result_rel->ri_NumIndices; i++)
		if (RelationGetRelid(result_rel->ri_IndexRelationDescs[i]) == indexid)
			return i;
	elog(ERROR, "execguard: index %u of %s is not open", indexid,
		 RelationGetRelationName(result_rel->ri_RelationDesc));
	pg_unreachable();
}

Relation
eg_open_index(ResultRelInfo *result_rel, Oid indexid)
{
	return result_rel->ri_IndexRelationDescs[eg_index_position(result_rel, indexid)];
}

bool
eg_writer_fetch(EgWriter *writer, int64 execution_id)
{
	ScanKeyData key;

	if (writer->pkey_scan == NULL)
	{
		writer->pkey = eg_open_index(writer->result_rel, writer->table->pkey_index);
		writer->pkey_scan = eg_index_beginscan(writer->rel, writer->pkey, writer->snapshot, 1, 0);
	}
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(execution_id));
	index_rescan(writer->pkey_scan, &key, 1, NULL, 0);
	/* The primary key: at most one version is visible. */
	return index_getnext_slot(writer->pkey_scan, ForwardScanDirection, writer->row);
}

void
eg_writer_prepare(EgWriter *writer)
{
	int			natts = RelationGetDescr(writer->rel)->natts;

	ExecClearTuple(writer->update);
	slot_getallattrs(writer->row);
	/* By reference values point into the row's buffer, which stays pinned. */
	memcpy(writer->values, writer->row->tts_values, sizeof(Datum) * natts);
	memcpy(writer->isnull, writer->row->tts_isnull, sizeof(bool) * natts);
}

EgWriteResult
eg_writer_update(EgWriter *writer, bool wait)
{
	TM_FailureData failure;
	LockTupleMode lockmode;
	EgIndexUpdate index_update;
	TM_Result	result;

	ResetPerTupleExprContext(writer->estate);
	ExecStoreVirtualTuple(writer->update);
	if (writer->rel->rd_att->constr != NULL)
		ExecConstraints(writer->result_rel, writer->update, writer->estate);
	result = eg_table_tuple_update(writer->rel, &writer->row->tts_tid, writer->update,
								   writer->estate->es_output_cid, writer->snapshot, wait, &failure, &lockmode,
								   &index_update);
	switch (result)
	{
		case TM_Ok:
			eg_insert_index_tuples_after_update(writer->result_rel, writer->update, writer->estate, index_update);
			return EG_WRITE_DONE;
		case TM_BeingModified:
			/* Only without waiting: another transaction holds the row. */
			return EG_WRITE_BUSY;
		case TM_Updated:
		case TM_Deleted:
			if (IsolationUsesXactSnapshot())
				eg_concurrent_update_error(result == TM_Deleted);
			return EG_WRITE_CHANGED;
		case TM_SelfModified:
			/* Written already by this call (it never writes a row twice). */
			return EG_WRITE_CHANGED;
		default:
			elog(ERROR, "execguard: unexpected result %d updating an execution", (int) result);
	}
	pg_unreachable();
}

bool
eg_writer_lock_newest(EgWriter *writer)
{
	TM_FailureData failure;
	ItemPointerData tid = writer->row->tts_tid;
	TM_Result	result;

	result = table_tuple_lock(writer->rel, &tid, writer->snapshot, writer->row,
							  writer->estate->es_output_cid, LockTupleNoKeyExclusive, LockWaitBlock,
							  TUPLE_LOCK_FLAG_FIND_LAST_VERSION, &failure);
	switch (result)
	{
		case TM_Ok:
			return true;
		case TM_Deleted:
			if (IsolationUsesXactSnapshot())
				eg_concurrent_update_error(true);
			return false;
		case TM_SelfModified:
			return false;
		default:
			elog(ERROR, "execguard: unexpected result %d locking an execution", (int) result);
	}
	pg_unreachable();
}
