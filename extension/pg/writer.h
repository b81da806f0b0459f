/*
 * extension/pg/writer.h
 *
 * A small writer over the executor, for the hot writes to
 * execguard.executions (claim_next's scan of pending rows,
 * claim_execution's creation of a new key, complete_execution(s),
 * heartbeat): through the table access method and the executor's index and
 * constraint routines, without an SQL statement: no plan to start and end,
 * no second lookup of each row, no result set to copy. The rules are the
 * ones an UPDATE (for a new key, an INSERT) follows under READ COMMITTED:
 *
 *   - a row is read with a new snapshot per call and skipped if the read
 *     version does not qualify;
 *   - a qualifying row is updated; if a concurrent transaction changed it
 *     first, the newest version is locked and the condition re-checked on
 *     it (what EvalPlanQual does), or, for a claim, the row is skipped, as
 *     FOR UPDATE SKIP LOCKED would;
 *   - the table's constraints are checked (ExecConstraints), the new version
 *     gets its index entries unless the update was HOT, and REPEATABLE READ
 *     and SERIALIZABLE callers get a serialization failure on a concurrent
 *     update, as from SQL;
 *   - a new key is inserted as INSERT ... ON CONFLICT DO NOTHING inserts it
 *     (ExecInsert's speculative insertion, arbitrated by executions_key),
 *     the columns it leaves out taking their defaults.
 *
 * What an UPDATE or INSERT would also do and this does not: fire triggers,
 * apply row-level security, compute generated columns. eg_writer_begin()
 * therefore refuses (returns false) when either table has any of those
 * (the foreign key's own triggers excepted, see queue_rows.h), and
 * when execguard.direct_writes is off; the caller then runs its SQL
 * statement instead, which does the same thing more slowly.
 *
 * Each write itself lives in the file of its operation, beside the SQL
 * statement that is its twin (claim_execution.cpp, claim_next.cpp,
 * fenced_writes.cpp); this is what they share.
 *
 * Values written here satisfy the column domains by construction (only the
 * SQL statements' expressions are coerced to domains); the domains guard
 * every other writer.
 *
 * The writer opens execguard.queue too, for the writes that keep its rows
 * in step (queue_rows.h).
 */
#ifndef EXECGUARD_PG_WRITER_H
#define EXECGUARD_PG_WRITER_H

#include "postgres.h"

#include "access/genam.h"
#include "executor/executor.h"
#include "nodes/execnodes.h"
#include "utils/snapshot.h"

#include "executions_table.h"

typedef struct EgWriter
{
	const EgExecutionsTable *table;
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *result_rel;
	Snapshot	snapshot;
	TupleTableSlot *row;		/* the version read or locked */
	TupleTableSlot *update;		/* the version to write (virtual) */
	Relation	pkey;			/* lookups by execution_id, opened on first use */
	IndexScanDesc pkey_scan;
	Datum	   *values;			/* update's values, filled by eg_writer_prepare */
	bool	   *isnull;
	/* execguard.queue, written after the execution's row (queue_rows.h) */
	Relation	queue;
	ResultRelInfo *queue_result_rel;
	TupleTableSlot *queue_row;	/* the queue row read or locked */
	TupleTableSlot *queue_update;	/* the queue row to write (virtual) */
	IndexScanDesc queue_pkey_scan;	/* lookups by execution_id, opened on first use */
} EgWriter;

typedef enum EgWriteResult
{
	EG_WRITE_DONE,				/* the new version is written */
	EG_WRITE_BUSY,				/* without waiting: another transaction holds the row */
	EG_WRITE_CHANGED			/* the row changed or went since it was read */
} EgWriteResult;

/*
 * Opens the table for writing with a new snapshot, as an SQL statement in
 * a volatile function would. False (nothing opened) when the fast path
 * does not apply; see above.
 */
extern bool eg_writer_begin(EgWriter *writer);

/* Closes what begin opened; later statements of the transaction see the writes. */
extern void eg_writer_end(EgWriter *writer);

/* Reads the version of execution_id visible to the snapshot into writer->row. */
extern bool eg_writer_fetch(EgWriter *writer, int64 execution_id);

/*
 * Copies writer->row into writer->values / writer->isnull, for the caller
 * to change the columns it writes before eg_writer_update.
 */
extern void eg_writer_prepare(EgWriter *writer);

/*
 * Writes values/isnull as the new version of writer->row. With wait, waits
 * for a transaction that holds the row; without, returns EG_WRITE_BUSY.
 * EG_WRITE_CHANGED when the row was changed or deleted since it was read:
 * then eg_writer_lock_newest() finds what it is now.
 */
extern EgWriteResult eg_writer_update(EgWriter *writer, bool wait);

/*
 * Locks the newest version of the row last read into writer->row (waiting
 * for its holder) and reads it there, for the caller to re-check. False
 * when the row is gone.
 */
extern bool eg_writer_lock_newest(EgWriter *writer);

/*
 * The serialization failure of an UPDATE under REPEATABLE READ and
 * SERIALIZABLE that meets a row changed (or deleted) since its snapshot.
 */
extern void eg_concurrent_update_error(bool deleted);

/* Where index indexid is among result_rel's open indexes, and that index. */
extern int	eg_index_position(ResultRelInfo *result_rel, Oid indexid);
extern Relation eg_open_index(ResultRelInfo *result_rel, Oid indexid);

/* Sets a column of the version to write (writer->values / writer->isnull). */
static inline void
eg_set_column(EgWriter *writer, EgColumn column, Datum value, bool isnull)
{
	AttrNumber	attnum = writer->table->attnum[column];

	writer->values[attnum - 1] = value;
	writer->isnull[attnum - 1] = isnull;
}

/* A column of the version to write, as prepared or set. */
static inline Datum
eg_prepared_column(EgWriter *writer, EgColumn column)
{
	return writer->values[writer->table->attnum[column] - 1];
}

#endif							/* EXECGUARD_PG_WRITER_H */
