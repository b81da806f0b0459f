/*
 * extension/pg/direct_writes.h
 *
 * The hot writes to execguard.executions without an SQL statement (see
 * writer.h), each the twin of an SQL statement in claims.cpp.
 */
#ifndef EXECGUARD_PG_DIRECT_WRITES_H
#define EXECGUARD_PG_DIRECT_WRITES_H

#include "postgres.h"

#include "grant.h"
#include "writer.h"

typedef enum EgInsertResult
{
	EG_INSERT_DONE,				/* the key is created running */
	EG_INSERT_EXISTS,			/* another transaction created the key first */
	EG_INSERT_JOB_CANCELLED,	/* the key's job is cancelled: nothing written */
	EG_INSERT_USE_SQL			/* execguard.jobs has row-level security: nothing done */
} EgInsertResult;

/*
 * insert_key: creates the key running with attempt 1 and fencing token 1,
 * granted as *grant says, unless it exists or its job is cancelled; the
 * job's row, when there is one, is locked FOR SHARE first and gives
 * max_attempts (3 without a job). Like INSERT ... ON CONFLICT DO NOTHING it
 * waits for a transaction that is inserting the same key, and under
 * REPEATABLE READ and SERIALIZABLE a key committed since the transaction's
 * snapshot is a serialization failure. *execution_id is the new row's id.
 */
extern EgInsertResult eg_direct_insert_key(EgWriter *writer, const Datum *key, const EgGrant *grant,
										   int64 *execution_id);

#endif							/* EXECGUARD_PG_DIRECT_WRITES_H */
