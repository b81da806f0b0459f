/*
 * extension/pg/no_jit.cpp
 *
 * The planner hook that keeps execguard's own statements out of JIT (see
 * no_jit.h).
 */
/* PostgreSQL declares its API with C linkage only when asked to. */
extern "C"
{
#include "postgres.h"

#include "jit/jit.h"
#include "optimizer/cost.h"
#include "optimizer/planner.h"

#include "no_jit.h"
}

int			eg_no_jit_depth = 0;

static planner_hook_type prev_planner_hook = NULL;

static bool
is_internal_statement(const char *query_string)
{
	if (query_string == NULL)
		return false;
	while (*query_string == ' ' || *query_string == '\t' || *query_string == '\n' || *query_string == '\r')
		query_string++;
	return strncmp(query_string, EG_INTERNAL_SQL_MARKER, sizeof(EG_INTERNAL_SQL_MARKER) - 1) == 0;
}

static PlannedStmt *
plan(Query *parse, const char *query_string, int cursorOptions, ParamListInfo boundParams)
{
	if (prev_planner_hook)
		return prev_planner_hook(parse, query_string, cursorOptions, boundParams);
	return standard_planner(parse, query_string, cursorOptions, boundParams);
}

/*
 * Plans as the next hook (or the standard planner) would, then takes back
 * the decision to JIT-compile for execguard's statements. The decision is
 * taken here, at planning, and the executor compiles only what the plan's
 * jitFlags ask for, so a cached generic plan planned here is never compiled
 * whatever the session's jit settings are when it runs.
 *
 * The SPI statements are also planned with enable_seqscan off. Each finds
 * its rows through an index condition (a key, an id, a lease range), but
 * the planner chooses by the estimates of the moment, and a generic plan
 * made while a table is small (a drained queue, a fresh install, just
 * analyzed) reads it whole: cheap then, and kept for the life of the
 * backend while the table grows to millions of rows. Off, a sequential
 * scan is chosen only where no index can serve, which none of these
 * statements needs.
 */
static PlannedStmt *
plan_without_seqscan(Query *parse, const char *query_string, int cursorOptions, ParamListInfo boundParams)
{
	bool		seqscan = enable_seqscan;
	PlannedStmt *volatile result = NULL;

	enable_seqscan = false;
	PG_TRY();
	{
		result = plan(parse, query_string, cursorOptions, boundParams);
	}
	PG_FINALLY();
	{
		enable_seqscan = seqscan;
	}
	PG_END_TRY();
	return result;
}

static PlannedStmt *
eg_planner(Query *parse, const char *query_string, int cursorOptions, ParamListInfo boundParams)
{
	PlannedStmt *result;

	if (eg_no_jit_depth > 0)
		result = plan_without_seqscan(parse, query_string, cursorOptions, boundParams);
	else
		result = plan(parse, query_string, cursorOptions, boundParams);
	if (eg_no_jit_depth > 0 || is_internal_statement(query_string))
		result->jitFlags = PGJIT_NONE;
	return result;
}

void
eg_install_planner_hook(void)
{
	prev_planner_hook = planner_hook;
	planner_hook = eg_planner;
}
