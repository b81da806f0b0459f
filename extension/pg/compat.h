/*
 * extension/pg/compat.h
 *
 * Every difference between the PostgreSQL majors execguard supports (15 to
 * 18) in one place, in the manner of TimescaleDB's compat.h: the rest of
 * extension/pg calls the names below and contains no PG_VERSION_NUM test.
 * A difference that is not only a signature says here what it means for
 * the direct writes.
 *
 * Include after postgres.h and the headers that declare what is wrapped
 * (this header includes those itself).
 */
#ifndef EXECGUARD_PG_COMPAT_H
#define EXECGUARD_PG_COMPAT_H

#include "postgres.h"

#include "access/genam.h"
#include "access/tableam.h"
#include "executor/executor.h"
#include "funcapi.h"
#include "nodes/execnodes.h"
#include "nodes/parsenodes.h"
#include "utils/backend_status.h"
#include "utils/rel.h"

#if PG_VERSION_NUM >= 160000
#include "parser/parse_relation.h"
#endif

#if PG_VERSION_NUM < 150000
#error "execguard needs PostgreSQL 15 or later"
#endif

/*
 * The module magic block. 18 can name the module and its version (shown by
 * pg_get_loaded_modules()), and its plain PG_MODULE_MAGIC leaves fields
 * unset, which -Wextra reports.
 */
#if PG_VERSION_NUM >= 180000
#define EG_MODULE_MAGIC PG_MODULE_MAGIC_EXT(.name = "execguard", .version = EG_EXTVERSION)
#else
#define EG_MODULE_MAGIC PG_MODULE_MAGIC
#endif

/* 18 adds instrumentation (for EXPLAIN) to index scans; execguard has none. */
static inline IndexScanDesc
eg_index_beginscan(Relation heap, Relation index, Snapshot snapshot, int nkeys, int norderbys)
{
#if PG_VERSION_NUM >= 180000
	return index_beginscan(heap, index, snapshot, NULL, nkeys, norderbys);
#else
	return index_beginscan(heap, index, snapshot, nkeys, norderbys);
#endif
}

/*
 * Which indexes need entries for the version an update wrote. Up to 15 an
 * update was either HOT (none) or not (all). From 16 a HOT update still
 * needs entries in summarizing indexes (BRIN): a DBA may add one to
 * executions, and the executor must then be told to insert into those only.
 */
typedef enum EgIndexUpdate
{
	EG_INDEX_UPDATE_NONE,
	EG_INDEX_UPDATE_ALL,
	EG_INDEX_UPDATE_SUMMARIZING
} EgIndexUpdate;

static inline TM_Result
eg_table_tuple_update(Relation rel, ItemPointer otid, TupleTableSlot *slot, CommandId cid,
					  Snapshot snapshot, bool wait, TM_FailureData *failure, LockTupleMode *lockmode,
					  EgIndexUpdate *index_update)
{
	TM_Result	result;
#if PG_VERSION_NUM >= 160000
	TU_UpdateIndexes update_indexes = TU_None;

	result = table_tuple_update(rel, otid, slot, cid, snapshot, InvalidSnapshot, wait, failure, lockmode,
								&update_indexes);
	*index_update = update_indexes == TU_All ? EG_INDEX_UPDATE_ALL :
		update_indexes == TU_Summarizing ? EG_INDEX_UPDATE_SUMMARIZING : EG_INDEX_UPDATE_NONE;
#else
	bool		update_indexes = false;

	result = table_tuple_update(rel, otid, slot, cid, snapshot, InvalidSnapshot, wait, failure, lockmode,
								&update_indexes);
	*index_update = update_indexes ? EG_INDEX_UPDATE_ALL : EG_INDEX_UPDATE_NONE;
#endif
	return result;
}

/* The index entries an update's new version needs, as ExecUpdateEpilogue makes them. */
static inline void
eg_insert_index_tuples_after_update(ResultRelInfo *result_rel, TupleTableSlot *slot, EState *estate,
									EgIndexUpdate index_update)
{
	if (result_rel->ri_NumIndices == 0 || index_update == EG_INDEX_UPDATE_NONE)
		return;
#if PG_VERSION_NUM >= 160000
	list_free(ExecInsertIndexTuples(result_rel, slot, estate, true, false, NULL, NIL,
									index_update == EG_INDEX_UPDATE_SUMMARIZING));
#else
	list_free(ExecInsertIndexTuples(result_rel, slot, estate, true, false, NULL, NIL));
#endif
}

/*
 * The index entries of an inserted row. With arbiters and no_dup_err, a
 * speculative insertion: *spec_conflict tells whether an arbiter conflicted.
 */
static inline List *
eg_insert_index_tuples(ResultRelInfo *result_rel, TupleTableSlot *slot, EState *estate, bool no_dup_err,
					   bool *spec_conflict, List *arbiters)
{
#if PG_VERSION_NUM >= 160000
	return ExecInsertIndexTuples(result_rel, slot, estate, false, no_dup_err, spec_conflict, arbiters, false);
#else
	return ExecInsertIndexTuples(result_rel, slot, estate, false, no_dup_err, spec_conflict, arbiters);
#endif
}

/*
 * ExecCheckIndexConstraints for a row about to be inserted. 18 takes the
 * tid of the row being replaced, for ON CONFLICT DO UPDATE of a row that
 * conflicts with itself; an insert passes an invalid one, as ExecInsert.
 */
static inline bool
eg_check_index_constraints(ResultRelInfo *result_rel, TupleTableSlot *slot, EState *estate,
						   ItemPointer conflict_tid, List *arbiters)
{
#if PG_VERSION_NUM >= 180000
	ItemPointerData no_tid;

	ItemPointerSetInvalid(&no_tid);
	return ExecCheckIndexConstraints(result_rel, slot, estate, conflict_tid, &no_tid, arbiters);
#else
	return ExecCheckIndexConstraints(result_rel, slot, estate, conflict_tid, arbiters);
#endif
}

/*
 * A range table entry for a relation that the direct writes update, with
 * the columns they may change. The executor reads those through
 * ExecGetUpdatedCols, to tell an index that an update left its key alone
 * (bottom-up deletion). Up to 15 they sit in the entry; from 16 in an
 * RTEPermissionInfo that the entry points to, appended to *perminfos. A
 * range table entry without one fails in ExecGetUpdatedCols at the first
 * non-HOT update. The permissions are never checked (the functions are
 * SECURITY DEFINER and write as the extension's owner), but are the ones
 * an UPDATE would need.
 */
static inline RangeTblEntry *
eg_updated_relation_entry(Relation rel, Bitmapset *updated, List **perminfos)
{
	RangeTblEntry *rte = makeNode(RangeTblEntry);

	rte->rtekind = RTE_RELATION;
	rte->relid = RelationGetRelid(rel);
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
#if PG_VERSION_NUM >= 160000
	{
		RTEPermissionInfo *perminfo = addRTEPermissionInfo(perminfos, rte);

		perminfo->requiredPerms = ACL_SELECT | ACL_UPDATE;
		perminfo->updatedCols = updated;
	}
#else
	rte->updatedCols = updated;
#endif
	return rte;
}

/*
 * The executor's range table. 18 also wants the relations it may open for
 * scanning (those not pruned): all of them, none is partitioned.
 */
static inline void
eg_init_range_table(EState *estate, List *range_table, List *perminfos)
{
#if PG_VERSION_NUM >= 180000
	ExecInitRangeTable(estate, range_table, perminfos, bms_add_range(NULL, 1, list_length(range_table)));
#elif PG_VERSION_NUM >= 160000
	ExecInitRangeTable(estate, range_table, perminfos);
#else
	ExecInitRangeTable(estate, range_table);
#endif
}

/* The planned CHECK constraints of a result relation (renamed in 18). */
#if PG_VERSION_NUM >= 180000
#define EG_RESULT_REL_CHECKS(result_rel) ((result_rel)->ri_CheckConstraintExprs)
#else
#define EG_RESULT_REL_CHECKS(result_rel) ((result_rel)->ri_ConstraintExprs)
#endif

/*
 * 18 has CHECK constraints that are NOT ENFORCED: ExecRelCheck leaves them
 * unplanned and skips them, and so must the direct writes.
 */
static inline bool
eg_check_is_enforced(const ConstrCheck *check)
{
#if PG_VERSION_NUM >= 180000
	return check->ccenforced;
#else
	return true;
#endif
}

/*
 * Generated columns: stored ones (12+) are computed by the executor on
 * every write, virtual ones (18) on every read and inside CHECK
 * constraints. The direct writes do neither, so a table with either kind
 * goes to SQL.
 */
static inline bool
eg_has_generated_columns(const TupleConstr *constr)
{
	if (constr == NULL)
		return false;
#if PG_VERSION_NUM >= 180000
	return constr->has_generated_stored || constr->has_generated_virtual;
#else
	return constr->has_generated_stored;
#endif
}

/* Entry i (1-based) of this transaction's snapshot of the backend status table. */
static inline LocalPgBackendStatus *
eg_local_backend_status(int i)
{
#if PG_VERSION_NUM >= 160000
	return pgstat_get_local_beentry_by_index(i);
#else
	return pgstat_fetch_stat_local_beentry(i);
#endif
}

#endif							/* EXECGUARD_PG_COMPAT_H */
