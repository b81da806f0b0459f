/*
 * extension/pg/key_lookup.cpp
 *
 * See key_lookup.h. Plain C-style code: no object with a destructor lives
 * in a frame that a PostgreSQL error can unwind; the scan, the slot, the
 * snapshot and the relation locks are released by the resource owner if a
 * call below raises one.
 */
/* PostgreSQL declares its API with C linkage only when asked to. */
extern "C"
{
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "executor/tuptable.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "executions_table.h"
#include "key_lookup.h"
}

/* The columns of executions_key. */
#define EG_KEY_COLUMNS 4

bool
eg_lookup_key(const Datum *key, EgKeyRow *row)
{
	const EgExecutionsTable *table = eg_executions_table();
	Relation	rel = table_open(table->relid, AccessShareLock);
	Relation	index = index_open(table->key_index, AccessShareLock);
	ScanKeyData keys[EG_KEY_COLUMNS];
	Snapshot	snapshot;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	bool		found;

	for (int i = 0; i < EG_KEY_COLUMNS; i++)
		ScanKeyEntryInitialize(&keys[i], 0, i + 1, BTEqualStrategyNumber, InvalidOid,
							   index->rd_indcollation[i], F_TEXTEQ, key[i]);

	/* As an SPI statement would: a new snapshot under READ COMMITTED. */
	snapshot = RegisterSnapshot(GetTransactionSnapshot());
	scan = eg_index_beginscan(rel, index, snapshot, EG_KEY_COLUMNS, 0);
	index_rescan(scan, keys, EG_KEY_COLUMNS, NULL, 0);
	slot = table_slot_create(rel, NULL);

	/* A unique index: at most one version of the key is visible. */
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	if (found)
	{
		TimestampTz now = GetCurrentTransactionStartTimestamp();
		bool		isnull;
		bool		start_null;
		Datum		value;
		Datum		start;

		row->execution_id = DatumGetInt64(eg_column_not_null(slot, EG_COL_EXECUTION_ID));
		row->status = eg_row_status(slot);
		row->fencing_token = DatumGetInt64(eg_column_not_null(slot, EG_COL_FENCING_TOKEN));
		row->attempt = DatumGetInt32(eg_column_not_null(slot, EG_COL_ATTEMPT));
		row->max_attempts = DatumGetInt32(eg_column_not_null(slot, EG_COL_MAX_ATTEMPTS));

		/* Compared with now() as the SQL did: the transaction's start. */
		value = eg_column(slot, EG_COL_LEASE_EXPIRES_AT, &isnull);
		row->lease_expired = !isnull && DatumGetTimestampTz(value) < now;
		row->marked_owner_gone = !isnull && TIMESTAMP_IS_NOBEGIN(DatumGetTimestampTz(value));
		value = eg_column(slot, EG_COL_NOT_BEFORE, &isnull);
		row->in_backoff = !isnull && DatumGetTimestampTz(value) > now;

		value = eg_column(slot, EG_COL_OWNER_PID, &isnull);
		start = eg_column(slot, EG_COL_OWNER_BACKEND_START, &start_null);
		row->has_owner = !isnull && !start_null;
		row->owner_pid = row->has_owner ? DatumGetInt32(value) : 0;
		row->owner_backend_start = row->has_owner ? DatumGetTimestampTz(start) : 0;
	}

	ExecDropSingleTupleTableSlot(slot);
	index_endscan(scan);
	UnregisterSnapshot(snapshot);
	index_close(index, AccessShareLock);
	table_close(rel, AccessShareLock);
	return found;
}
