/*
 * extension/pg/spi_plans.cpp
 *
 * See spi_plans.h.
 */
/* PostgreSQL declares its API with C linkage only when asked to. */
extern "C"
{
#include "postgres.h"

#include "executor/spi.h"

#include "no_jit.h"
#include "spi_plans.h"
}

uint64
eg_execute(EgStatement *statement, Datum *values, const char *nulls, long limit)
{
	volatile int rc;

	if (statement->plan == NULL)
	{
		/*
		 * Always the generic plan: every statement here is written to plan
		 * well without knowing its parameters (an index condition rather
		 * than a join on a LIMIT $n subquery), while the plan cache would
		 * keep re-planning because a generic LIMIT $n looks expensive.
		 */
		SPIPlanPtr	plan = SPI_prepare_cursor(statement->sql, statement->nargs, statement->argtypes,
											  CURSOR_OPT_GENERIC_PLAN);

		if (plan == NULL)
			elog(ERROR, "execguard: SPI_prepare failed (%s) for: %s",
				 SPI_result_code_string(SPI_result), statement->sql);
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "execguard: SPI_keepplan failed");
		statement->plan = plan;
	}
	/* Plans made while it runs, its own included, are kept out of JIT. */
	eg_no_jit_depth++;
	PG_TRY();
	{
		rc = SPI_execute_plan(statement->plan, values, nulls, false, limit);
	}
	PG_FINALLY();
	{
		eg_no_jit_depth--;
	}
	PG_END_TRY();
	if (rc < 0)
		elog(ERROR, "execguard: SPI_execute_plan failed (%s) for: %s",
			 SPI_result_code_string(rc), statement->sql);
	return SPI_processed;
}

Datum
eg_result(uint64 row, int column, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, column, isnull);
}

Datum
eg_result_not_null(uint64 row, int column)
{
	bool		isnull;
	Datum		value = eg_result(row, column, &isnull);

	if (isnull)
		elog(ERROR, "execguard: unexpected NULL in column %d of an internal query", column);
	return value;
}

void
eg_connect_spi(bool *connected)
{
	if (!*connected)
	{
		SPI_connect();
		*connected = true;
	}
}
