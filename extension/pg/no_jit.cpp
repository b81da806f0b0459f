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

/*
 * Plans as the next hook (or the standard planner) would, then takes back
 * the decision to JIT-compile for execguard's statements. The decision is
 * taken here, at planning, and the executor compiles only what the plan's
 * jitFlags ask for, so a cached generic plan planned here is never compiled
 * whatever the session's jit settings are when it runs.
 */
static PlannedStmt *
eg_planner(Query *parse, const char *query_string, int cursorOptions, ParamListInfo boundParams)
{
	PlannedStmt *result;

	if (prev_planner_hook)
		result = prev_planner_hook(parse, query_string, cursorOptions, boundParams);
	else
		result = standard_planner(parse, query_string, cursorOptions, boundParams);
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
