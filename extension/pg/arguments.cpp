/*
 * extension/pg/arguments.cpp
 *
 * See arguments.h.
 */
/* PostgreSQL declares its API with C linkage only when asked to. */
extern "C"
{
#include "postgres.h"

#include "fmgr.h"
#include "utils/timestamp.h"

#include "arguments.h"
#include "core_call.h"
#include "executions_table.h"
}

#define MAX_LEASE_SECONDS (7.0 * 24 * 3600)
#define MAX_WORKER_BYTES 200

void
eg_require_schema(void)
{
	(void) eg_executions_table();
}

void
eg_require_arg(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
}

double
eg_interval_seconds(const Interval *span)
{
	return (double) span->time / USECS_PER_SEC +
		((double) span->day + (double) span->month * DAYS_PER_MONTH) * SECS_PER_DAY;
}

Datum
eg_lease_arg(FunctionCallInfo fcinfo, int argno)
{
	double		seconds;

	eg_require_arg(fcinfo, argno, "lease");
	seconds = eg_interval_seconds(PG_GETARG_INTERVAL_P(argno));
	if (!(seconds > 0 && seconds <= MAX_LEASE_SECONDS))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("lease must be positive and at most 7 days")));
	return PG_GETARG_DATUM(argno);
}

Datum
eg_worker_arg(FunctionCallInfo fcinfo, int argno, bool *isnull)
{
	text	   *worker;

	*isnull = PG_ARGISNULL(argno);
	if (*isnull)
		return (Datum) 0;
	worker = PG_GETARG_TEXT_PP(argno);
	if (VARSIZE_ANY_EXHDR(worker) > MAX_WORKER_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("worker is longer than %d bytes", MAX_WORKER_BYTES)));
	return PointerGetDatum(worker);
}

Datum
eg_key_arg(FunctionCallInfo fcinfo, int argno, eg_key_part part, const char *name)
{
	eg_require_arg(fcinfo, argno, name);
	return PointerGetDatum(eg_canonical_key_part_text(part, PG_GETARG_TEXT_PP(argno)));
}

bool
eg_track_owner_arg(FunctionCallInfo fcinfo, int argno)
{
	eg_require_arg(fcinfo, argno, "track_owner");
	return PG_GETARG_BOOL(argno);
}
