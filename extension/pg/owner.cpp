/*
 * extension/pg/owner.cpp
 *
 * See owner.h.
 */
/* PostgreSQL declares its API with C linkage only when asked to. */
extern "C"
{
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/procarray.h"
#include "utils/backend_status.h"

#include "compat.h"
#include "owner.h"
#include "stats.h"
}

static bool exit_callback_registered = false;
static bool xact_callback_registered = false;
static bool swept_ever = false;
static uint64 swept_epoch = 0;
static bool sweep_pending = false;
static uint64 sweep_pending_epoch = 0;

bool
eg_owner_alive(int32 pid, TimestampTz backend_start)
{
	int			n;

	if (pid == MyProcPid)
		return backend_start == MyStartTimestamp;
	if (BackendPidGetProc(pid) == NULL)
		return false;

	/*
	 * The pid is in use: by the same session, or by a newer one that got the
	 * pid after the owner exited? The backend status table has each
	 * session's start time (read once per transaction).
	 */
	n = pgstat_fetch_stat_numbackends();
	for (int i = 1; i <= n; i++)
	{
		LocalPgBackendStatus *local = eg_local_backend_status(i);

		if (local != NULL && local->backendStatus.st_procpid == pid)
			return local->backendStatus.st_proc_start_timestamp == backend_start;
	}

	/* Not in the snapshot yet: never rescue from under a possibly live owner. */
	return true;
}

/*
 * Runs after ProcKill has taken this backend out of the proc array, so a
 * claimer that sees the new epoch also sees this pid gone.
 */
static void
owner_exit_callback(int code, Datum arg)
{
	eg_owner_exit_bump();
}

void
eg_owner_note_tracked_claim(void)
{
	/*
	 * A single-user backend (postgres --single) has no other session to tell
	 * that it exited, and it detaches the shared memory it created in
	 * shmem_exit, before on_proc_exit callbacks run: bumping the epoch there
	 * would touch unmapped memory. Under the postmaster a backend keeps its
	 * mapping until the process ends. test/single_user/run.sh.
	 */
	if (!IsUnderPostmaster)
		return;
	if (!exit_callback_registered)
	{
		on_proc_exit(owner_exit_callback, (Datum) 0);
		exit_callback_registered = true;
	}
}

static void
sweep_xact_callback(XactEvent event, void *arg)
{
	if (!sweep_pending)
		return;
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT)
	{
		swept_epoch = sweep_pending_epoch;
		swept_ever = true;
		sweep_pending = false;
	}
	else if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		sweep_pending = false;
}

bool
eg_owner_sweep_due(uint64 *epoch)
{
	bool		available;

	*epoch = eg_owner_exit_epoch(&available);
	if (!available)
		return true;
	return !(swept_ever && swept_epoch == *epoch);
}

void
eg_owner_sweep_done(uint64 epoch)
{
	if (!xact_callback_registered)
	{
		RegisterXactCallback(sweep_xact_callback, NULL);
		xact_callback_registered = true;
	}
	sweep_pending = true;
	sweep_pending_epoch = epoch;
}
