/*
 * extension/pg/module.cpp
 *
 * The loadable module: PG_MODULE_MAGIC and _PG_init.
 *
 * C++ inside the backend, the rules this extension keeps (CONTRIBUTING.md):
 * files in extension/pg include PostgreSQL headers and use no STL, no
 * exceptions and no objects with destructors, so an elog(ERROR) longjmp can
 * never skip a destructor; files in extension/core use the STL and throw,
 * never see a PostgreSQL header (the build fails if they do), and are
 * reached only through the noexcept functions of execguard/bridge.h.
 */
/* PostgreSQL declares its API with C linkage only when asked to. */
extern "C"
{
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"

#include "utils/guc.h"

#include "compat.h"
#include "no_jit.h"
#include "settings.h"
#include "stats.h"
}

int			eg_rescue_interval_ms = 1000;
bool		eg_direct_writes = true;
bool		eg_claims_require_submitted_job = true;

void
eg_define_settings(void)
{
	DefineCustomIntVariable("execguard.rescue_interval",
							"How often a busy claim_next session also rescues expired or orphaned claims.",
							"claim_next always rescues when due pending rows do not fill max_claims; "
							"otherwise at most this often per session. 0 rescues on every call.",
							&eg_rescue_interval_ms,
							1000, 0, 60 * 1000,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("execguard.direct_writes",
							 "Claims, completions and heartbeats write execguard.executions directly.",
							 "The hot writes use the table access method and the executor's index and "
							 "constraint routines instead of planning and running an SQL statement, with the "
							 "same locking and re-checks. Off runs the SQL statements (slower). A table with "
							 "triggers, row-level security or generated columns always takes the SQL path.",
							 &eg_direct_writes,
							 true,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("execguard.claims_require_submitted_job",
							 "claim_execution refuses keys that no submitted job created.",
							 "On, a claim of a key that has no row (its job was never submitted, the key is "
							 "not in its job's spec, or the job was purged) returns the outcome 'unknown' and "
							 "writes nothing. Off, such a key is created running, as in execguard 0.5.0 and "
							 "earlier. Only a superuser can change it.",
							 &eg_claims_require_submitted_job,
							 true,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	MarkGUCPrefixReserved("execguard");
}

extern "C"
{
EG_MODULE_MAGIC;

PGDLLEXPORT void _PG_init(void);
}

extern "C" void
_PG_init(void)
{
	eg_define_settings();
	eg_install_planner_hook();

	/*
	 * Shared memory can only be reserved while the postmaster loads
	 * preloaded libraries. Loaded later, every function but the counters
	 * still works.
	 */
	if (process_shared_preload_libraries_in_progress)
		eg_stats_install_hooks();
}
