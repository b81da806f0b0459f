/*
 * extension/pg/no_jit.h
 *
 * execguard never JIT-compiles its own statements. Every statement it runs
 * is a short index probe or a bounded write whose plan is cached for the
 * life of the backend; JIT compilation costs hundreds of milliseconds per
 * execution and pays off only for long scans. But the planner decides by
 * estimated cost, and the estimates of a generic plan over a large queue
 * cross jit_above_cost: on a stock server (jit = on) one statement of the
 * rescue pass was compiled on every execution, and claims fell from
 * thousands per second to five (docs/benchmarks.md).
 *
 * So a planner hook clears the JIT flags of every plan made for execguard:
 *
 *   - any plan made while one of execguard's SPI statements runs
 *     (spi_plans.cpp counts them in eg_no_jit_depth): the statement's own
 *     plan, and those of the statements PostgreSQL runs for it, such as the
 *     foreign-key check of a queue row;
 *   - any plan whose text starts with the marker below: the SQL-language
 *     functions of the install scripts start their bodies with it
 *     (functions.c plans a body with the body as query text).
 *
 * The SPI statements (and what PostgreSQL plans while they run, a DBA's
 * trigger on execguard's tables included) are also planned with
 * enable_seqscan off, so that no generic plan made while a table is small
 * reads it whole once it has grown (no_jit.cpp, docs/sql-api.md "Plans that
 * do not depend on table size").
 *
 * The user's own statements, including the ones that call execguard's
 * functions, are planned exactly as before.
 * The direct paths (writer.cpp and its users, key_lookup.cpp) plan nothing and
 * build their expressions without a parent plan node (ExecPrepareExpr,
 * ExecPrepareCheck), and PostgreSQL never JIT-compiles such an expression.
 */
#ifndef EXECGUARD_PG_NO_JIT_H
#define EXECGUARD_PG_NO_JIT_H

/* Leading whitespace before it is allowed (a function body's first line). */
#define EG_INTERNAL_SQL_MARKER "/* execguard internal */"

/* The number of execguard SPI statements running in this backend. */
extern int	eg_no_jit_depth;

/* Called from _PG_init, in every process that loads the library. */
extern void eg_install_planner_hook(void);

#endif							/* EXECGUARD_PG_NO_JIT_H */
