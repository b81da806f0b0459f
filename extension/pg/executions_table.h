/*
 * extension/pg/executions_table.h
 *
 * execguard.executions and execguard.queue as the direct-access code sees
 * them (key_lookup.cpp, writer.h and the direct writes that use it): the
 * oids of the tables and of the indexes it reads, and the attribute number
 * of every column of executions by name. Looked up once per
 * backend and kept until a relcache invalidation of the table or one of
 * those indexes (ALTER TABLE, REINDEX, DROP EXTENSION) forgets them.
 */
#ifndef EXECGUARD_PG_EXECUTIONS_TABLE_H
#define EXECGUARD_PG_EXECUTIONS_TABLE_H

#include "postgres.h"

#include "nodes/execnodes.h"
#include "utils/rel.h"

typedef enum EgColumn
{
	EG_COL_EXECUTION_ID,
	EG_COL_JOB_ID,
	EG_COL_MODEL_ID,
	EG_COL_REGION,
	EG_COL_QUESTION_ID,
	EG_COL_STATUS,
	EG_COL_ATTEMPT,
	EG_COL_MAX_ATTEMPTS,
	EG_COL_FENCING_TOKEN,
	EG_COL_WORKER,
	EG_COL_OWNER_PID,
	EG_COL_OWNER_BACKEND_START,
	EG_COL_LEASE_EXPIRES_AT,
	EG_COL_NOT_BEFORE,
	EG_COL_PAYLOAD,
	EG_COL_RESULT,
	EG_COL_ERROR,
	EG_COL_STARTED_AT,
	EG_COL_FINISHED_AT,
	EG_NUM_COLUMNS
} EgColumn;

typedef enum EgStatus
{
	EG_STATUS_PENDING,
	EG_STATUS_RUNNING,
	EG_STATUS_COMPLETED,
	EG_STATUS_FAILED,
	EG_STATUS_CANCELLED
} EgStatus;

typedef struct EgExecutionsTable
{
	Oid			relid;
	Oid			pkey_index;		/* executions_pkey (execution_id) */
	Oid			key_index;		/* executions_key, the unique key */
	AttrNumber	attnum[EG_NUM_COLUMNS];
	/* execguard.queue: (execution_id, lease_expires_at), pending and running rows */
	Oid			queue_relid;
	Oid			queue_pkey_index;	/* queue_pkey (execution_id) */
	Oid			queue_pending_index;	/* queue_pending (execution_id) WHERE lease IS NULL */
	/* the same by (region, ...), (model_id, ...) and (region, model_id, ...) */
	Oid			queue_pending_region_index;
	Oid			queue_pending_model_index;
	Oid			queue_pending_region_model_index;
	/* execguard.jobs, read (and locked FOR SHARE) when a claim creates a key */
	Oid			jobs_relid;
	Oid			jobs_pkey_index;	/* jobs_pkey (job_id) */
	AttrNumber	jobs_job_id;
	AttrNumber	jobs_max_attempts;
	AttrNumber	jobs_cancelled_at;
	AttrNumber	jobs_purged_at;
} EgExecutionsTable;

/* Attribute numbers of execguard.queue, fixed by its CREATE TABLE. */
/* max_attempts of an execution whose job has no row (insert_key: coalesce(..., 3)) */
#define EG_DEFAULT_MAX_ATTEMPTS 3

#define EG_QUEUE_EXECUTION_ID 1
#define EG_QUEUE_LEASE_EXPIRES_AT 2
#define EG_QUEUE_REGION 3
#define EG_QUEUE_MODEL_ID 4
#define EG_QUEUE_COLUMNS 4

/*
 * The tables' oids and columns; errors out if the extension's objects are
 * missing, or if the database's extension is older than this library
 * (hint: ALTER EXTENSION execguard UPDATE). Every function that writes
 * executions calls it first.
 */
extern const EgExecutionsTable *eg_executions_table(void);

/* A column's value in a slot of the table; NOT NULL columns error out on NULL. */
extern Datum eg_column(TupleTableSlot *slot, EgColumn column, bool *isnull);
extern Datum eg_column_not_null(TupleTableSlot *slot, EgColumn column);

/*
 * The table's CHECK constraints ready to evaluate, for
 * ResultRelInfo.ri_ConstraintExprs: planned once per backend (as the
 * typcache does for domain constraints) and compiled into estate's query
 * context, where ExecConstraints would re-read and re-plan each one in
 * every call. The cache is keyed on the constraints' text, so any change
 * to them (a DBA's ALTER TABLE) is picked up.
 */
extern ExprState **eg_table_checks(Relation rel, EState *estate);

/*
 * The default of each column of the table, as an INSERT that leaves the
 * column out would compute it (build_column_default: the identity's
 * nextval, a DEFAULT clause, the domain's default), planned once per
 * backend until the table changes, initialised in estate: one entry per
 * attribute, NULL where the column's default is NULL.
 */
extern ExprState **eg_table_defaults(Relation rel, EState *estate);

/* The status column of a row of the table. */
extern EgStatus eg_row_status(TupleTableSlot *slot);

#endif							/* EXECGUARD_PG_EXECUTIONS_TABLE_H */
