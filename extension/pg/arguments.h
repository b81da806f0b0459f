/*
 * extension/pg/arguments.h
 *
 * Checks of the SQL-callable functions' arguments that more than one
 * operation makes (claim_execution, claim_next, the fenced writes, the
 * job operations): a NULL where none is allowed, a lease or worker out of
 * bounds, a key part in canonical form.
 */
#ifndef EXECGUARD_PG_ARGUMENTS_H
#define EXECGUARD_PG_ARGUMENTS_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "fmgr.h"

#include "core_call.h"

/*
 * Every function first makes sure the database's extension matches this
 * library (eg_executions_table), so that an outdated schema is reported
 * with its remedy rather than as a missing relation in some statement.
 */
extern void eg_require_schema(void);

/* Errors out when argument argno, called name, is NULL. */
extern void eg_require_arg(FunctionCallInfo fcinfo, int argno, const char *name);

/* An interval's length in seconds, a month counted as DAYS_PER_MONTH days. */
extern double eg_interval_seconds(const Interval *span);

/* The lease argument: positive and at most a week. */
extern Datum eg_lease_arg(FunctionCallInfo fcinfo, int argno);

/* The worker argument, NULL allowed (*isnull), at most 200 bytes. */
extern Datum eg_worker_arg(FunctionCallInfo fcinfo, int argno, bool *isnull);

/* A part of a key, not NULL, canonicalised like the stored keys. */
extern Datum eg_key_arg(FunctionCallInfo fcinfo, int argno, eg_key_part part, const char *name);

/* The track_owner argument, not NULL. */
extern bool eg_track_owner_arg(FunctionCallInfo fcinfo, int argno);

#endif							/* EXECGUARD_PG_ARGUMENTS_H */
