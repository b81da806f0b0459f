/*
 * extension/pg/core_call.h
 *
 * Helpers for calling the C++ core through execguard/bridge.h: raising its
 * errors with the right SQLSTATE, and taking its malloc'd results into
 * palloc'd memory without leaking them when PostgreSQL errors out.
 */
#ifndef EXECGUARD_PG_CORE_CALL_H
#define EXECGUARD_PG_CORE_CALL_H

#include "postgres.h"

#include "utils/jsonb.h"

#include "execguard/bridge.h"

/*
 * Lets the core stop at a pending query cancel, statement_timeout or
 * pg_terminate_backend (see eg_set_interrupt_check); call before a core
 * call that loops over input.
 */
extern void eg_core_interruptible(void);

/*
 * ereport(ERROR) for a failed core call; for EG_INTERRUPTED, the pending
 * interrupt's own error (CHECK_FOR_INTERRUPTS).
 */
[[noreturn]] extern void eg_raise(eg_status status, const eg_error *error);

/* Checks the status, then moves the core's text into a palloc'd string. */
extern char *eg_take_text(eg_status status, eg_text *text, const eg_error *error);

/* Borrowed views of PostgreSQL values, for passing to the core. */
extern eg_slice eg_slice_of_text(text *value);
extern eg_slice eg_slice_of_cstring(const char *value);

/* Jsonb as JSON text, and back. */
extern char *eg_jsonb_to_cstring(Jsonb *value);
extern Datum eg_cstring_to_jsonb(char *json);

/*
 * Canonical spelling of one key part, as a text datum; `argname` names the
 * SQL argument in the error when it is NULL.
 */
extern text *eg_canonical_key_part_text(eg_key_part part, text *raw);

#endif							/* EXECGUARD_PG_CORE_CALL_H */
