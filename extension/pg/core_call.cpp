/*
 * extension/pg/core_call.cpp
 *
 * See core_call.h.
 */
/* PostgreSQL declares its API with C linkage only when asked to. */
extern "C"
{
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "core_call.h"
}

/*
 * The core's interrupt check: true exactly when CHECK_FOR_INTERRUPTS() would
 * raise (ProcessInterrupts: nothing while interrupts are held off; FATAL for
 * pg_terminate_backend; 57014 for a cancel or statement_timeout unless query
 * cancel is held off). An interrupt that would not raise (a barrier, a
 * memory-context log request) does not stop the core: it is served by the
 * next CHECK_FOR_INTERRUPTS outside it.
 */
static int
interrupt_would_raise(void)
{
	if (!InterruptPending || InterruptHoldoffCount != 0 || CritSectionCount != 0)
		return 0;
	return ProcDiePending || (QueryCancelPending && QueryCancelHoldoffCount == 0);
}

void
eg_core_interruptible(void)
{
	eg_set_interrupt_check(interrupt_would_raise);
}

void
eg_raise(eg_status status, const eg_error *error)
{
	int			sqlstate;

	if (status == EG_INTERRUPTED)
	{
		CHECK_FOR_INTERRUPTS();
		/* Not reached while interrupt_would_raise() agrees with PostgreSQL. */
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("canceling statement: execguard was interrupted")));
	}
	switch (status)
	{
		case EG_INVALID_PARAMETER:
			sqlstate = ERRCODE_INVALID_PARAMETER_VALUE;
			break;
		case EG_PROGRAM_LIMIT:
			sqlstate = ERRCODE_PROGRAM_LIMIT_EXCEEDED;
			break;
		case EG_OUT_OF_MEMORY:
			sqlstate = ERRCODE_OUT_OF_MEMORY;
			break;
		default:
			sqlstate = ERRCODE_INTERNAL_ERROR;
			break;
	}
	ereport(ERROR, (errcode(sqlstate), errmsg("%s", error->message)));
	pg_unreachable();
}

char *
eg_take_text(eg_status status, eg_text *result, const eg_error *error)
{
	char	   *volatile copy = NULL;

	if (status != EG_OK)
		eg_raise(status, error);
	PG_TRY();
	{
		copy = pnstrdup(result->data, result->len);
	}
	PG_FINALLY();
	{
		eg_text_free(result);
	}
	PG_END_TRY();
	return copy;
}

eg_slice
eg_slice_of_text(text *value)
{
	eg_slice	slice;

	slice.data = VARDATA_ANY(value);
	slice.len = VARSIZE_ANY_EXHDR(value);
	return slice;
}

eg_slice
eg_slice_of_cstring(const char *value)
{
	eg_slice	slice;

	slice.data = value;
	slice.len = strlen(value);
	return slice;
}

char *
eg_jsonb_to_cstring(Jsonb *value)
{
	return JsonbToCString(NULL, &value->root, VARSIZE(value));
}

Datum
eg_cstring_to_jsonb(char *json)
{
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
}

text *
eg_canonical_key_part_text(eg_key_part part, text *raw)
{
	eg_slice	slice = eg_slice_of_text(raw);
	char	   *buffer = (char *) palloc(slice.len + 1);
	size_t		len = 0;
	eg_error	error;
	eg_status	status;

	status = eg_canonical_key_part(part, slice, buffer, &len, &error);
	if (status != EG_OK)
		eg_raise(status, &error);
	return cstring_to_text_with_len(buffer, (int) len);
}
