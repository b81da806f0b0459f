/*
 * extension/pg/stats.h
 *
 * Cumulative counters in shared memory (pg_stat_statements style): only
 * pg_atomic_uint64 and POD in the segment, requested from
 * shmem_request_hook and initialised under AddinShmemInitLock. Counting is
 * a no-op when the library was not preloaded, so every other function
 * works without shared_preload_libraries; reading the counters then raises
 * an error whose hint says how to enable them.
 */
#ifndef EXECGUARD_PG_STATS_H
#define EXECGUARD_PG_STATS_H

#include "postgres.h"

/*
 * Order = the OUT columns of execguard.stats_raw() (before stats_reset) up
 * to EG_JOBS_SUBMITTED, then those of execguard.stats_extra() (0.6.0).
 */
typedef enum EgCounter
{
	EG_CLAIMS_CLAIMED,
	EG_CLAIMS_RECLAIMED,
	EG_CLAIMS_RUNNING,
	EG_CLAIMS_COMPLETED,
	EG_CLAIMS_CANCELLED,
	EG_CLAIMS_FAILED,
	EG_CLAIMS_BACKOFF,
	EG_NORMALIZATION_DUPLICATES_REMOVED,
	EG_STALE_WRITES_REJECTED,
	EG_LEASES_RESCUED_EXPIRED,
	EG_LEASES_RESCUED_OWNER_GONE,
	EG_EXECUTIONS_CANCELLED,
	EG_RETRIES_SCHEDULED,
	EG_EXECUTIONS_COMPLETED,
	EG_EXECUTIONS_FAILED,
	EG_EXECUTIONS_RELEASED,
	EG_JOBS_SUBMITTED,
	EG_CLAIMS_UNKNOWN,
	EG_EXECUTIONS_PURGED,
	EG_WRITES_AFTER_CANCEL,
	EG_NUM_COUNTERS
} EgCounter;

/* The counters of stats_raw(); the rest are stats_extra()'s. */
#define EG_NUM_RAW_COUNTERS EG_CLAIMS_UNKNOWN

/* Called from _PG_init while the postmaster loads preloaded libraries. */
extern void eg_stats_install_hooks(void);

extern void eg_count(EgCounter counter, uint64 n);

/*
 * Bumped whenever a backend that holds owner-tracked claims exits, so that
 * claim_next sweeps for dead owners only when one may exist. *available is
 * false without the shared segment (then the caller sweeps every time).
 */
extern uint64 eg_owner_exit_epoch(bool *available);
extern void eg_owner_exit_bump(void);

#endif							/* EXECGUARD_PG_STATS_H */
