/*
 * extension/pg/key_lookup.h
 *
 * The read at the start of claim_execution: the row of one key, found
 * through the unique index executions_key with a direct index scan rather
 * than an SPI query. Most calls of an auto-stop check are duplicates that
 * end with this read, and an SPI query spends more on starting and ending
 * its executor than on the lookup itself.
 *
 * Only a read: it decides which atomic statement to run (create, grant,
 * rescue) or that none is needed. Every write still goes through an SQL
 * statement that re-checks the state it acts on, so a row that changes
 * after this read is never acted on from stale values.
 */
#ifndef EXECGUARD_PG_KEY_LOOKUP_H
#define EXECGUARD_PG_KEY_LOOKUP_H

#include "postgres.h"

#include "datatype/timestamp.h"

#include "executions_table.h"

typedef struct EgKeyRow
{
	int64		execution_id;
	EgStatus	status;
	int64		fencing_token;
	int32		attempt;
	int32		max_attempts;
	bool		lease_expired;	/* lease_expires_at < now() */
	bool		marked_owner_gone;	/* lease_expires_at = '-infinity' */
	bool		in_backoff;		/* not_before > now() */
	bool		has_owner;
	int32		owner_pid;
	TimestampTz owner_backend_start;
} EgKeyRow;

/*
 * Reads the row of key (job_id, model_id, region, question_id; canonical
 * text datums) with a snapshot taken as an SPI statement would take it
 * (a new one per call under READ COMMITTED). False when there is none.
 */
extern bool eg_lookup_key(const Datum *key, EgKeyRow *row);

#endif							/* EXECGUARD_PG_KEY_LOOKUP_H */
