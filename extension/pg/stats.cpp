/*
 * extension/pg/stats.cpp
 *
 * Shared-memory counters behind the execguard.stats view (see stats.h).
 */
/* PostgreSQL declares its API with C linkage only when asked to. */
extern "C"
{
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "stats.h"
}

typedef struct EgSharedStats
{
	pg_atomic_uint64 counters[EG_NUM_COUNTERS];
	pg_atomic_uint64 owner_exit_epoch;
	slock_t		reset_lock;		/* protects stats_reset */
	TimestampTz stats_reset;
} EgSharedStats;

static EgSharedStats *eg_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
eg_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(EgSharedStats)));
}

/*
 * Runs in the postmaster at start and after every crash restart, so the
 * counters restart with the server, and in EXEC_BACKEND children to attach.
 */
static void
eg_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	eg_shared = (EgSharedStats *) ShmemInitStruct("execguard stats", sizeof(EgSharedStats), &found);
	if (!found)
	{
		for (int i = 0; i < EG_NUM_COUNTERS; i++)
			pg_atomic_init_u64(&eg_shared->counters[i], 0);
		pg_atomic_init_u64(&eg_shared->owner_exit_epoch, 0);
		SpinLockInit(&eg_shared->reset_lock);
		eg_shared->stats_reset = GetCurrentTimestamp();
	}
	LWLockRelease(AddinShmemInitLock);
}

void
eg_stats_install_hooks(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = eg_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = eg_shmem_startup;
}

void
eg_count(EgCounter counter, uint64 n)
{
	if (eg_shared != NULL && n > 0)
		pg_atomic_fetch_add_u64(&eg_shared->counters[counter], n);
}

uint64
eg_owner_exit_epoch(bool *available)
{
	*available = eg_shared != NULL;
	return eg_shared != NULL ? pg_atomic_read_u64(&eg_shared->owner_exit_epoch) : 0;
}

void
eg_owner_exit_bump(void)
{
	if (eg_shared != NULL)
		pg_atomic_fetch_add_u64(&eg_shared->owner_exit_epoch, 1);
}

static void
eg_require_shared_stats(void)
{
	if (eg_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("execguard counters are not available"),
				 errdetail("The counters live in shared memory, which execguard can only reserve when the server loads it at start."),
				 errhint("Add execguard to shared_preload_libraries in postgresql.conf and restart the server.")));
}

extern "C"
{
PG_FUNCTION_INFO_V1(execguard_stats);
PG_FUNCTION_INFO_V1(execguard_stats_extra);
PG_FUNCTION_INFO_V1(execguard_stats_reset);
}

/*
 * counters first..end-1 as the columns of the function's one row, then
 * stats_reset when with_reset.
 */
static Datum
counters_row(FunctionCallInfo fcinfo, const char *name, int first, int end, bool with_reset)
{
	TupleDesc	tupdesc;
	Datum		values[EG_NUM_COUNTERS + 1];
	bool		nulls[EG_NUM_COUNTERS + 1] = {false};
	int			natts = end - first + (with_reset ? 1 : 0);

	eg_require_shared_stats();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "%s must return a composite type", name);
	if (tupdesc->natts != natts)
		elog(ERROR, "%s has %d columns, the library expects %d: update the extension", name, tupdesc->natts,
			 natts);

	for (int i = first; i < end; i++)
		values[i - first] = Int64GetDatum((int64) pg_atomic_read_u64(&eg_shared->counters[i]));
	if (with_reset)
	{
		SpinLockAcquire(&eg_shared->reset_lock);
		values[end - first] = TimestampTzGetDatum(eg_shared->stats_reset);
		SpinLockRelease(&eg_shared->reset_lock);
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/* execguard.stats_raw(): one row, a column per counter, then stats_reset. */
extern "C" Datum
execguard_stats(PG_FUNCTION_ARGS)
{
	return counters_row(fcinfo, "execguard.stats_raw()", 0, EG_NUM_RAW_COUNTERS, true);
}

/*
 * execguard.stats_extra() (0.6.0): the counters added after stats_raw(),
 * whose columns a DBA's grants depend on and so never change.
 */
extern "C" Datum
execguard_stats_extra(PG_FUNCTION_ARGS)
{
	return counters_row(fcinfo, "execguard.stats_extra()", EG_NUM_RAW_COUNTERS, EG_NUM_COUNTERS, false);
}

/* execguard.stats_reset(): zero every counter (not the owner-exit epoch). */
extern "C" Datum
execguard_stats_reset(PG_FUNCTION_ARGS)
{
	TimestampTz now = GetCurrentTimestamp();

	eg_require_shared_stats();
	for (int i = 0; i < EG_NUM_COUNTERS; i++)
		pg_atomic_write_u64(&eg_shared->counters[i], 0);
	SpinLockAcquire(&eg_shared->reset_lock);
	eg_shared->stats_reset = now;
	SpinLockRelease(&eg_shared->reset_lock);
	PG_RETURN_VOID();
}
