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
#include "catalog/namespace.h"
#include "catalog/pg_index.h"
#include "executor/tuptable.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "key_lookup.h"
}

#define EG_SCHEMA "execguard"
#define EG_TABLE "executions"
#define EG_KEY_INDEX "executions_key"
#define EG_KEY_COLUMNS 4

/* The columns read, by name: attribute numbers are looked up per call. */
enum
{
	COL_EXECUTION_ID,
	COL_STATUS,
	COL_FENCING_TOKEN,
	COL_ATTEMPT,
	COL_MAX_ATTEMPTS,
	COL_LEASE_EXPIRES_AT,
	COL_NOT_BEFORE,
	COL_OWNER_PID,
	COL_OWNER_BACKEND_START,
	NUM_COLUMNS
};

static const char *const column_names[NUM_COLUMNS] = {
	"execution_id", "status", "fencing_token", "attempt", "max_attempts",
	"lease_expires_at", "not_before", "owner_pid", "owner_backend_start"
};

static Oid
relation_oid(Oid schema, const char *name)
{
	Oid			relid = get_relname_relid(name, schema);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("relation \"%s.%s\" does not exist", EG_SCHEMA, name),
				 errhint("The execguard extension's objects are missing; reinstall the extension.")));
	return relid;
}

static void
find_columns(TupleDesc desc, AttrNumber *attnums)
{
	for (int c = 0; c < NUM_COLUMNS; c++)
	{
		attnums[c] = InvalidAttrNumber;
		for (int i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute attr = TupleDescAttr(desc, i);

			if (!attr->attisdropped && strcmp(NameStr(attr->attname), column_names[c]) == 0)
			{
				attnums[c] = attr->attnum;
				break;
			}
		}
		if (attnums[c] == InvalidAttrNumber)
			elog(ERROR, "execguard: column \"%s\" of %s.%s is missing", column_names[c], EG_SCHEMA,
				 EG_TABLE);
	}
}

/* A NOT NULL column's value. */
static Datum
required_attr(TupleTableSlot *slot, const AttrNumber *attnums, int column)
{
	bool		isnull;
	Datum		value = slot_getattr(slot, attnums[column], &isnull);

	if (isnull)
		elog(ERROR, "execguard: %s.%s.%s is NULL", EG_SCHEMA, EG_TABLE, column_names[column]);
	return value;
}

static EgStatus
parse_status(const text *status)
{
	static const struct
	{
		const char *name;
		EgStatus	status;
	}			known[] = {
		{"pending", EG_STATUS_PENDING},
		{"running", EG_STATUS_RUNNING},
		{"completed", EG_STATUS_COMPLETED},
		{"failed", EG_STATUS_FAILED},
		{"cancelled", EG_STATUS_CANCELLED},
	};
	size_t		len = VARSIZE_ANY_EXHDR(status);

	for (const auto &k : known)
		if (strlen(k.name) == len && memcmp(k.name, VARDATA_ANY(status), len) == 0)
			return k.status;
	/* The CHECK constraint on status rules this out. */
	elog(ERROR, "execguard: unknown execution status \"%.*s\"", (int) len, VARDATA_ANY(status));
	pg_unreachable();
}

bool
eg_lookup_key(const Datum *key, EgKeyRow *row)
{
	Oid			schema = get_namespace_oid(EG_SCHEMA, false);
	Relation	rel = table_open(relation_oid(schema, EG_TABLE), AccessShareLock);
	Relation	index = index_open(relation_oid(schema, EG_KEY_INDEX), AccessShareLock);
	AttrNumber	attnums[NUM_COLUMNS];
	ScanKeyData keys[EG_KEY_COLUMNS];
	Snapshot	snapshot;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	bool		found;

	if (index->rd_index->indrelid != RelationGetRelid(rel) || !index->rd_index->indisunique ||
		index->rd_index->indnatts != EG_KEY_COLUMNS)
		elog(ERROR, "execguard: %s.%s is not the unique index on the key of %s.%s", EG_SCHEMA,
			 EG_KEY_INDEX, EG_SCHEMA, EG_TABLE);
	find_columns(RelationGetDescr(rel), attnums);
	for (int i = 0; i < EG_KEY_COLUMNS; i++)
		ScanKeyEntryInitialize(&keys[i], 0, i + 1, BTEqualStrategyNumber, InvalidOid,
							   index->rd_indcollation[i], F_TEXTEQ, key[i]);

	/* As an SPI statement would: a new snapshot under READ COMMITTED. */
	snapshot = RegisterSnapshot(GetTransactionSnapshot());
	scan = index_beginscan(rel, index, snapshot, EG_KEY_COLUMNS, 0);
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

		row->execution_id = DatumGetInt64(required_attr(slot, attnums, COL_EXECUTION_ID));
		row->status = parse_status(DatumGetTextPP(required_attr(slot, attnums, COL_STATUS)));
		row->fencing_token = DatumGetInt64(required_attr(slot, attnums, COL_FENCING_TOKEN));
		row->attempt = DatumGetInt32(required_attr(slot, attnums, COL_ATTEMPT));
		row->max_attempts = DatumGetInt32(required_attr(slot, attnums, COL_MAX_ATTEMPTS));

		/* Compared with now() as the SQL did: the transaction's start. */
		value = slot_getattr(slot, attnums[COL_LEASE_EXPIRES_AT], &isnull);
		row->lease_expired = !isnull && DatumGetTimestampTz(value) < now;
		row->marked_owner_gone = !isnull && TIMESTAMP_IS_NOBEGIN(DatumGetTimestampTz(value));
		value = slot_getattr(slot, attnums[COL_NOT_BEFORE], &isnull);
		row->in_backoff = !isnull && DatumGetTimestampTz(value) > now;

		value = slot_getattr(slot, attnums[COL_OWNER_PID], &isnull);
		start = slot_getattr(slot, attnums[COL_OWNER_BACKEND_START], &start_null);
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
