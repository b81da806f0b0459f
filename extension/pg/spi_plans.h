/*
 * extension/pg/spi_plans.h
 *
 * Statements prepared once per backend and kept (SPI_keepplan), and always
 * run with their generic plan, so the hot paths (claims, heartbeats,
 * completions) never parse or plan SQL. Each
 * statement is a static EgStatement: plain data, no constructor.
 */
#ifndef EXECGUARD_PG_SPI_PLANS_H
#define EXECGUARD_PG_SPI_PLANS_H

#include "postgres.h"

#include "executor/spi.h"

#define EG_MAX_STATEMENT_ARGS 10

typedef struct EgStatement
{
	const char *sql;
	int			nargs;
	Oid			argtypes[EG_MAX_STATEMENT_ARGS];
	SPIPlanPtr	plan;			/* NULL until first use */
} EgStatement;

/*
 * Runs the statement (preparing it on first use) inside the caller's
 * SPI_connect; returns SPI_processed. `nulls` uses SPI's convention (' ' or
 * 'n'), NULL for none. Errors out on any SPI failure.
 */
extern uint64 eg_execute(EgStatement *statement, Datum *values, const char *nulls, long limit);

/* Column `column` (1-based) of row `row` of the last result, and its null flag. */
extern Datum eg_result(uint64 row, int column, bool *isnull);
extern Datum eg_result_not_null(uint64 row, int column);

/*
 * Connects SPI unless *connected says so already, and sets it: for callers
 * that connect only for the first statement they need (most claims need
 * none) and call SPI_finish at the end if they did.
 */
extern void eg_connect_spi(bool *connected);

#endif							/* EXECGUARD_PG_SPI_PLANS_H */
