/*
 * extension/pg/owner.h
 *
 * Owner liveness: a claim made with owner tracking records the claiming
 * backend (pid and start time). When that backend is gone (the worker
 * crashed or its connection died) the claim can be rescued at once instead
 * of after the lease. A pid alone is not enough, since pids are reused:
 * the backend start time tells a new session with the same pid apart.
 */
#ifndef EXECGUARD_PG_OWNER_H
#define EXECGUARD_PG_OWNER_H

#include "postgres.h"

#include "datatype/timestamp.h"

/* False only when the backend that made the claim certainly no longer runs. */
extern bool eg_owner_alive(int32 pid, TimestampTz backend_start);

/* Call when this backend makes an owner-tracked claim. */
extern void eg_owner_note_tracked_claim(void);

/*
 * Whether claim_next should look for claims of dead owners: only when a
 * tracked backend has exited since this backend last looked (always, when
 * the library was not preloaded). After a sweep, eg_owner_sweep_done()
 * remembers the epoch once the transaction commits.
 */
extern bool eg_owner_sweep_due(uint64 *epoch);
extern void eg_owner_sweep_done(uint64 epoch);

#endif							/* EXECGUARD_PG_OWNER_H */
