/*
 * extension/pg/executions_table.cpp
 *
 * See executions_table.h.
 */
/* PostgreSQL declares its API with C linkage only when asked to. */
extern "C"
{
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_class_d.h"
#include "commands/extension.h"
#include "catalog/pg_index.h"
#include "executor/tuptable.h"
#include "executor/executor.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteHandler.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "compat.h"
#include "executions_table.h"
}

#define EG_SCHEMA "execguard"
#define EG_TABLE "executions"
#define EG_QUEUE "queue"

static const char *const column_names[EG_NUM_COLUMNS] = {
	"execution_id", "job_id", "model_id", "region", "question_id", "status", "attempt",
	"max_attempts", "fencing_token", "worker", "owner_pid", "owner_backend_start",
	"lease_expires_at", "not_before", "payload", "result", "error", "started_at", "finished_at"
};

static EgExecutionsTable table;
static bool table_valid = false;
static bool callback_registered = false;

/*
 * Planned column defaults (eg_table_defaults), valid while no invalidation
 * of the table has arrived since they were planned. Any change to a
 * column's default or identity updates the column's pg_attribute row,
 * which invalidates the table's relcache entry; counting invalidations
 * also catches one that arrives while the defaults are being planned.
 */
static MemoryContext defaults_context = NULL;
static Expr **defaults_planned = NULL;
static int	defaults_natts = -1;	/* -1: nothing cached */
static uint64 table_invalidations = 0;
static uint64 defaults_planned_after = 0;	/* table_invalidations when planning began */

static void
forget_on_invalidation(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == table.relid)
		table_invalidations++;
	if (!table_valid)
		return;
	if (relid == InvalidOid || relid == table.relid || relid == table.pkey_index ||
		relid == table.key_index || relid == table.queue_relid || relid == table.queue_pkey_index ||
		relid == table.queue_pending_index || relid == table.queue_pending_region_index ||
		relid == table.queue_pending_model_index || relid == table.queue_pending_region_model_index ||
		relid == table.jobs_relid || relid == table.jobs_pkey_index)
		table_valid = false;
}

/*
 * A schema renamed, created or dropped: the name execguard may now lead
 * elsewhere. Relation callbacks do not hear of it (renaming a schema
 * changes none of its relations' rows), so this one forgets the lookups.
 */
static void
forget_on_namespace_change(Datum arg, int cacheid, uint32 hashvalue)
{
	table_valid = false;
}

/*
 * The relation called name in schema. The tables the functions use must be
 * ones the extension created (member_table; an index is checked to be on
 * such a table instead, as indexes are not members). The SECURITY DEFINER functions run their statements with the
 * extension owner's rights, so they must never act on a look-alike: a
 * relation of the same name that someone else made (execguard--0.4.0--0.5.0
 * refuses a schema that a non-superuser owns, which is what a look-alike
 * would need; this holds even if a superuser later gives the schema away).
 */
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

/* A table of the schema, which must be a member of the extension. */
static Oid
member_table(Oid schema, const char *name, Oid extension)
{
	Oid			relid = relation_oid(schema, name);

	if (getExtensionOfObject(RelationRelationId, relid) != extension)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("relation \"%s.%s\" is not a member of the execguard extension", EG_SCHEMA, name),
				 errdetail("execguard's functions act only on the relations its install script created."),
				 errhint("Find out who created or renamed it (a schema or relation was renamed, or a "
						 "relation put in its place), then restore the extension's own.")));
	return relid;
}

/*
 * An index of the table by oid, checked to be what execguard created:
 * on the table, with `columns` key columns, unique or not as required.
 */
static Oid
checked_index(Oid schema, Oid relid, const char *name, int columns, bool unique, AttrNumber first_column)
{
	Oid			indexid = relation_oid(schema, name);
	HeapTuple	tuple = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexid));
	Form_pg_index index;
	bool		ok;

	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "execguard: cache lookup failed for index %u", indexid);
	index = (Form_pg_index) GETSTRUCT(tuple);
	ok = index->indrelid == relid && index->indnkeyatts == columns && (!unique || index->indisunique) &&
		index->indkey.values[0] == first_column;
	ReleaseSysCache(tuple);
	if (!ok)
		elog(ERROR, "execguard: %s.%s is not the index execguard created on %s.%s", EG_SCHEMA, name,
			 EG_SCHEMA, get_rel_name(relid));
	return indexid;
}

const EgExecutionsTable *
eg_executions_table(void)
{
	Oid			extension;
	Oid			schema;

	if (table_valid)
		return &table;
	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(forget_on_invalidation, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACEOID, forget_on_namespace_change, (Datum) 0);
		callback_registered = true;
	}

	/*
	 * Its statements name the relations execguard.<name>: each table found
	 * by that name must be the extension's own (member_table), which also
	 * makes the schema called execguard the extension's.
	 */
	extension = get_extension_oid("execguard", false);
	schema = get_namespace_oid(EG_SCHEMA, false);
	table.relid = member_table(schema, EG_TABLE, extension);
	for (int c = 0; c < EG_NUM_COLUMNS; c++)
	{
		table.attnum[c] = get_attnum(table.relid, column_names[c]);
		if (table.attnum[c] == InvalidAttrNumber)
			elog(ERROR, "execguard: column \"%s\" of %s.%s is missing", column_names[c], EG_SCHEMA,
				 EG_TABLE);
	}
	table.pkey_index = checked_index(schema, table.relid, "executions_pkey", 1, true,
									 table.attnum[EG_COL_EXECUTION_ID]);
	table.key_index = checked_index(schema, table.relid, "executions_key", 4, true, table.attnum[EG_COL_JOB_ID]);

	/*
	 * The queue (0.4.0) with its region and model (0.5.0): an older schema
	 * cannot work with this library.
	 */
	table.queue_relid = get_relname_relid(EG_QUEUE, schema);
	if (!OidIsValid(table.queue_relid) || get_attnum(table.queue_relid, "region") == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the execguard extension in this database is older than its library"),
				 errdetail("The library needs the table %s.%s with the columns region and model_id, "
						   "which extension version 0.5.0 creates.", EG_SCHEMA, EG_QUEUE),
				 errhint("Run ALTER EXTENSION execguard UPDATE.")));
	if (get_attnum(table.queue_relid, "execution_id") != EG_QUEUE_EXECUTION_ID ||
		get_attnum(table.queue_relid, "lease_expires_at") != EG_QUEUE_LEASE_EXPIRES_AT ||
		get_attnum(table.queue_relid, "region") != EG_QUEUE_REGION ||
		get_attnum(table.queue_relid, "model_id") != EG_QUEUE_MODEL_ID)
		elog(ERROR, "execguard: %s.%s does not have the columns execguard created", EG_SCHEMA, EG_QUEUE);
	(void) member_table(schema, EG_QUEUE, extension);
	table.queue_pkey_index = checked_index(schema, table.queue_relid, "queue_pkey", 1, true,
										   EG_QUEUE_EXECUTION_ID);
	table.queue_pending_index = checked_index(schema, table.queue_relid, "queue_pending", 1, false,
											  EG_QUEUE_EXECUTION_ID);
	table.queue_pending_region_index = checked_index(schema, table.queue_relid, "queue_pending_region", 2, false,
													 EG_QUEUE_REGION);
	table.queue_pending_model_index = checked_index(schema, table.queue_relid, "queue_pending_model", 2, false,
													EG_QUEUE_MODEL_ID);
	table.queue_pending_region_model_index = checked_index(schema, table.queue_relid,
														   "queue_pending_region_model", 3, false, EG_QUEUE_REGION);

	table.jobs_relid = member_table(schema, "jobs", extension);
	/* submit_job's statements read it; nothing else is needed of it here. */
	(void) member_table(schema, "regions", extension);
	table.jobs_job_id = get_attnum(table.jobs_relid, "job_id");
	table.jobs_max_attempts = get_attnum(table.jobs_relid, "max_attempts");
	table.jobs_cancelled_at = get_attnum(table.jobs_relid, "cancelled_at");
	table.jobs_purged_at = get_attnum(table.jobs_relid, "purged_at");
	if (table.jobs_job_id == InvalidAttrNumber || table.jobs_max_attempts == InvalidAttrNumber ||
		table.jobs_cancelled_at == InvalidAttrNumber)
		elog(ERROR, "execguard: %s.jobs does not have the columns execguard created", EG_SCHEMA);
	if (table.jobs_purged_at == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the execguard extension in this database is older than its library"),
				 errdetail("The library needs the column %s.jobs.purged_at, which extension version 0.6.0 "
						   "creates.", EG_SCHEMA),
				 errhint("Run ALTER EXTENSION execguard UPDATE.")));
	table.jobs_pkey_index = checked_index(schema, table.jobs_relid, "jobs_pkey", 1, true, table.jobs_job_id);
	/* The table may be a new one by the same name. */
	defaults_natts = -1;
	table_valid = true;
	return &table;
}

Datum
eg_column(TupleTableSlot *slot, EgColumn column, bool *isnull)
{
	return slot_getattr(slot, table.attnum[column], isnull);
}

Datum
eg_column_not_null(TupleTableSlot *slot, EgColumn column)
{
	bool		isnull;
	Datum		value = slot_getattr(slot, table.attnum[column], &isnull);

	if (isnull)
		elog(ERROR, "execguard: %s.%s.%s is NULL", EG_SCHEMA, EG_TABLE, column_names[column]);
	return value;
}

EgStatus
eg_row_status(TupleTableSlot *slot)
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
	text	   *status = DatumGetTextPP(eg_column_not_null(slot, EG_COL_STATUS));
	size_t		len = VARSIZE_ANY_EXHDR(status);

	for (const auto &k : known)
		if (strlen(k.name) == len && memcmp(k.name, VARDATA_ANY(status), len) == 0)
			return k.status;
	/* The domain execguard.execution_status rules this out. */
	elog(ERROR, "execguard: unknown execution status \"%.*s\"", (int) len, VARDATA_ANY(status));
	pg_unreachable();
}

/*
 * A backend-lifetime cache's memory context, created on first use (NAME
 * must be a literal), else emptied.
 */
#define EMPTIED_CACHE(context, name) \
	((context) == NULL ? ((context) = AllocSetContextCreate(CacheMemoryContext, name, ALLOCSET_SMALL_SIZES)) \
	 : (MemoryContextReset(context), (context)))

/* Planned CHECK constraints of the table (eg_table_checks). */
static MemoryContext checks_context = NULL;
static char **checks_source = NULL;	/* ccbin of each, in constr->check order */
static bool *checks_enforced = NULL;	/* false: NOT ENFORCED (18), not planned */
static Expr **checks_planned = NULL;
static int	checks_count = -1;		/* -1: nothing cached */

static bool
checks_cached_for(const TupleConstr *constr)
{
	if (checks_count != constr->num_check)
		return false;
	for (int i = 0; i < checks_count; i++)
		if (strcmp(checks_source[i], constr->check[i].ccbin) != 0 ||
			checks_enforced[i] != eg_check_is_enforced(&constr->check[i]))
			return false;
	return true;
}

ExprState **
eg_table_checks(Relation rel, EState *estate)
{
	const TupleConstr *constr = rel->rd_att->constr;
	ExprState **states;
	MemoryContext old;

	if (!checks_cached_for(constr))
	{
		checks_count = -1;
		old = MemoryContextSwitchTo(EMPTIED_CACHE(checks_context, "execguard table checks"));
		checks_source = (char **) palloc(sizeof(char *) * (constr->num_check + 1));
		checks_enforced = (bool *) palloc(sizeof(bool) * (constr->num_check + 1));
		checks_planned = (Expr **) palloc(sizeof(Expr *) * (constr->num_check + 1));
		for (int i = 0; i < constr->num_check; i++)
		{
			checks_source[i] = pstrdup(constr->check[i].ccbin);
			checks_enforced[i] = eg_check_is_enforced(&constr->check[i]);
			/* As ExecRelCheck: a constraint not enforced is skipped (a NULL state passes). */
			checks_planned[i] = checks_enforced[i] ?
				expression_planner((Expr *) stringToNode(checks_source[i])) : NULL;
		}
		MemoryContextSwitchTo(old);
		checks_count = constr->num_check;
	}

	old = MemoryContextSwitchTo(estate->es_query_cxt);
	states = (ExprState **) palloc(sizeof(ExprState *) * (checks_count + 1));
	for (int i = 0; i < checks_count; i++)
		states[i] = ExecInitExpr(checks_planned[i], NULL);
	MemoryContextSwitchTo(old);
	return states;
}

ExprState **
eg_table_defaults(Relation rel, EState *estate)
{
	int			natts = RelationGetDescr(rel)->natts;
	ExprState **states;
	MemoryContext old;

	if (defaults_natts != natts || defaults_planned_after != table_invalidations)
	{
		defaults_natts = -1;
		defaults_planned_after = table_invalidations;
		old = MemoryContextSwitchTo(EMPTIED_CACHE(defaults_context, "execguard column defaults"));
		defaults_planned = (Expr **) palloc0(sizeof(Expr *) * natts);
		for (int i = 0; i < natts; i++)
		{
			Node	   *expr = TupleDescAttr(RelationGetDescr(rel), i)->attisdropped ? NULL :
				build_column_default(rel, i + 1);

			if (expr != NULL)
				defaults_planned[i] = expression_planner((Expr *) expr);
		}
		MemoryContextSwitchTo(old);
		defaults_natts = natts;
	}

	old = MemoryContextSwitchTo(estate->es_query_cxt);
	states = (ExprState **) palloc0(sizeof(ExprState *) * natts);
	for (int i = 0; i < natts; i++)
		if (defaults_planned[i] != NULL)
			states[i] = ExecInitExpr(defaults_planned[i], NULL);
	MemoryContextSwitchTo(old);
	return states;
}
