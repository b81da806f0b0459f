/*
 * extension/pg/grant.cpp
 *
 * See grant.h.
 */
/* PostgreSQL declares its API with C linkage only when asked to. */
extern "C"
{
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "grant.h"
#include "owner.h"
}

void
eg_owner_values(bool track_owner, Datum *pid, Datum *started, char *pid_null, char *started_null)
{
	if (track_owner)
	{
		*pid = Int32GetDatum(MyProcPid);
		*started = TimestampTzGetDatum(MyStartTimestamp);
		*pid_null = ' ';
		*started_null = ' ';
		eg_owner_note_tracked_claim();
	}
	else
	{
		*pid = (Datum) 0;
		*started = (Datum) 0;
		*pid_null = 'n';
		*started_null = 'n';
	}
}

TimestampTz
eg_lease_end(Datum lease)
{
	return DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
												   TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()),
												   lease));
}
