/*
 * extension/pg/queue_rows.h
 *
 * Keeping execguard.queue in step with execguard.executions. The queue
 * holds a row for every pending (lease NULL) and running execution, and
 * claim_next finds its work through it. Every write of an execution's row
 * that moves it into, within or out of those states, or changes its lease,
 * writes its queue row too, in the same statement or call, after the
 * execution's row and while holding it: so queue writers never wait for
 * each other in an order that could deadlock, and a queue row never needs
 * the foreign key's checks, which the direct writes skip (the key column
 * never changes, and the execution a new queue row references is held by
 * this transaction, so it cannot be deleted before we commit).
 *
 * Twins, as the operations' writes are: SQL fragments for the statements,
 * and functions for the direct writes (writer.h).
 */
#ifndef EXECGUARD_PG_QUEUE_ROWS_H
#define EXECGUARD_PG_QUEUE_ROWS_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "storage/itemptr.h"

#include "writer.h"

/*
 * In SQL: QUEUE_AS_RUNNING(CTE) records the grants or heartbeats a CTE
 * returned (execution_id, lease_expires_at, region, model_id);
 * QUEUE_AS_PENDING(SELECT) re-queues as pending the executions a SELECT of
 * (execution_id, region, model_id) names; DEQUEUE(CTE) removes those a CTE
 * finished. The upserts also mend a missing queue row, which is why they
 * carry the region and model (they never change on an existing one).
 */
#define QUEUE_AS_RUNNING(CTE) \
	"INSERT INTO execguard.queue AS q (execution_id, lease_expires_at, region, model_id) " \
	"SELECT execution_id, lease_expires_at, region, model_id FROM " CTE " " \
	"ON CONFLICT (execution_id) DO UPDATE SET lease_expires_at = excluded.lease_expires_at"
#define QUEUE_AS_PENDING(SELECT) \
	"INSERT INTO execguard.queue AS q (execution_id, region, model_id) " SELECT " " \
	"ON CONFLICT (execution_id) DO UPDATE SET lease_expires_at = NULL"
#define DEQUEUE(CTE) \
	"DELETE FROM execguard.queue AS q WHERE q.execution_id = ANY (ARRAY(SELECT execution_id FROM " CTE "))"

/*
 * Fills writer->queue_update: running with lease_expires_at, or pending,
 * with the region and model of the execution row the writer has prepared.
 */
extern void eg_queue_version(EgWriter *writer, int64 execution_id, bool pending, TimestampTz lease_expires_at);

/* Inserts writer->queue_update as a new queue row. */
extern void eg_queue_insert(EgWriter *writer);

/*
 * Sets the queue row of an execution this call has just written: running
 * with lease_expires_at, or pending. known_tid, when not NULL, is where the
 * caller read the row. Held as the execution's row is, no other execguard
 * writer changes the queue row meanwhile; should anyone else have (a DBA),
 * its newest version is written, and a missing row is created.
 */
extern void eg_queue_set(EgWriter *writer, int64 execution_id, bool pending, TimestampTz lease_expires_at,
						 const ItemPointerData *known_tid);

/* Deletes the queue row of an execution this call has just finished. */
extern void eg_queue_delete(EgWriter *writer, int64 execution_id);

#endif							/* EXECGUARD_PG_QUEUE_ROWS_H */
