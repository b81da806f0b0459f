/*
 * extension/pg/queue_rows.cpp
 *
 * See queue_rows.h: the direct writes' side of keeping execguard.queue in
 * step. Plain C-style code, as writer.cpp.
 */
/* PostgreSQL declares its API with C linkage only when asked to. */
extern "C"
{
#include "postgres.h"

#include "access/stratnum.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "executor/executor.h"
#include "utils/fmgroids.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "queue_rows.h"
#include "writer.h"
}

/* Reads the queue row of execution_id visible to the snapshot into writer->queue_row. */
static bool
queue_fetch(EgWriter *writer, int64 execution_id)
{
	ScanKeyData key;

	if (writer->queue_pkey_scan == NULL)
		writer->queue_pkey_scan =
			eg_index_beginscan(writer->queue, eg_open_index(writer->queue_result_rel, writer->table->queue_pkey_index),
							writer->snapshot, 1, 0);
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(execution_id));
	index_rescan(writer->queue_pkey_scan, &key, 1, NULL, 0);
	return index_getnext_slot(writer->queue_pkey_scan, ForwardScanDirection, writer->queue_row);
}

/*
 * After a concurrent update or delete of the queue row at *tid: false
 * under REPEATABLE READ and SERIALIZABLE (an error, as from SQL), else
 * locks its newest version and points *tid at it; false when it is gone.
 */
static bool
queue_lock_newest(EgWriter *writer, ItemPointer tid, TM_Result result)
{
	TM_FailureData failure;

	if (IsolationUsesXactSnapshot())
		eg_concurrent_update_error(result == TM_Deleted);
	if (result == TM_Deleted)
		return false;
	result = table_tuple_lock(writer->queue, tid, writer->snapshot, writer->queue_row,
							  writer->estate->es_output_cid, LockTupleExclusive, LockWaitBlock,
							  TUPLE_LOCK_FLAG_FIND_LAST_VERSION, &failure);
	if (result == TM_Deleted)
		return false;
	if (result != TM_Ok)
		elog(ERROR, "execguard: unexpected result %d locking a queue row", (int) result);
	*tid = writer->queue_row->tts_tid;
	return true;
}

void
eg_queue_version(EgWriter *writer, int64 execution_id, bool pending, TimestampTz lease_expires_at)
{
	TupleTableSlot *slot = writer->queue_update;

	ExecClearTuple(slot);
	slot->tts_values[EG_QUEUE_EXECUTION_ID - 1] = Int64GetDatum(execution_id);
	slot->tts_isnull[EG_QUEUE_EXECUTION_ID - 1] = false;
	slot->tts_values[EG_QUEUE_LEASE_EXPIRES_AT - 1] = TimestampTzGetDatum(lease_expires_at);
	slot->tts_isnull[EG_QUEUE_LEASE_EXPIRES_AT - 1] = pending;
	/* By reference, into the execution's row, which stays pinned. */
	slot->tts_values[EG_QUEUE_REGION - 1] = eg_prepared_column(writer, EG_COL_REGION);
	slot->tts_isnull[EG_QUEUE_REGION - 1] = false;
	slot->tts_values[EG_QUEUE_MODEL_ID - 1] = eg_prepared_column(writer, EG_COL_MODEL_ID);
	slot->tts_isnull[EG_QUEUE_MODEL_ID - 1] = false;
	ExecStoreVirtualTuple(slot);
}

void
eg_queue_insert(EgWriter *writer)
{
	table_tuple_insert(writer->queue, writer->queue_update, writer->estate->es_output_cid, 0, NULL);
	list_free(eg_insert_index_tuples(writer->queue_result_rel, writer->queue_update, writer->estate, false, NULL,
									 NIL));
}

void
eg_queue_set(EgWriter *writer, int64 execution_id, bool pending, TimestampTz lease_expires_at,
			 const ItemPointerData *known_tid)
{
	TupleTableSlot *slot = writer->queue_update;
	CommandId	cid = writer->estate->es_output_cid;
	ItemPointerData tid;
	bool		found;

	if (known_tid != NULL)
	{
		tid = *known_tid;
		found = true;
	}
	else
	{
		found = queue_fetch(writer, execution_id);
		if (found)
			tid = writer->queue_row->tts_tid;
	}

	eg_queue_version(writer, execution_id, pending, lease_expires_at);
	while (found)
	{
		TM_FailureData failure;
		LockTupleMode lockmode;
		EgIndexUpdate index_update;
		TM_Result	result;

		result = eg_table_tuple_update(writer->queue, &tid, slot, cid, writer->snapshot, true, &failure, &lockmode,
									   &index_update);
		if (result == TM_Ok)
		{
			eg_insert_index_tuples_after_update(writer->queue_result_rel, slot, writer->estate, index_update);
			return;
		}
		if (result != TM_Updated && result != TM_Deleted)
			elog(ERROR, "execguard: unexpected result %d updating a queue row", (int) result);
		found = queue_lock_newest(writer, &tid, result);
	}
	eg_queue_insert(writer);
}

void
eg_queue_delete(EgWriter *writer, int64 execution_id)
{
	ItemPointerData tid;

	if (!queue_fetch(writer, execution_id))
		return;
	tid = writer->queue_row->tts_tid;
	for (;;)
	{
		TM_FailureData failure;
		TM_Result	result;

		result = table_tuple_delete(writer->queue, &tid, writer->estate->es_output_cid, writer->snapshot,
									InvalidSnapshot, true, &failure, false);
		if (result == TM_Ok)
			return;
		if (result != TM_Updated && result != TM_Deleted)
			elog(ERROR, "execguard: unexpected result %d deleting a queue row", (int) result);
		if (!queue_lock_newest(writer, &tid, result))
			return;
	}
}
