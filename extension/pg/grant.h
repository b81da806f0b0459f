/*
 * extension/pg/grant.h
 *
 * A grant: what claim_execution and claim_next write when they hand an
 * execution to a worker (running, a new attempt and fencing token, the
 * worker, the owner, the lease), in SQL (GRANT_SET) and for the direct
 * writes (EgGrant). The owner and lease helpers serve heartbeat too,
 * which renews both.
 */
#ifndef EXECGUARD_PG_GRANT_H
#define EXECGUARD_PG_GRANT_H

#include "postgres.h"

#include "datatype/timestamp.h"

/*
 * The SET list of a grant. $W worker, $P owner pid, $S owner start,
 * $L lease; the fencing token strictly increases on every grant.
 */
#define GRANT_SET(W, P, S, L) \
	"status = 'running', attempt = e.attempt + 1, fencing_token = e.fencing_token + 1, " \
	"worker = " W ", owner_pid = " P ", owner_backend_start = " S ", " \
	"lease_expires_at = pg_catalog.now() + " L ", not_before = NULL, " \
	"started_at = pg_catalog.now(), finished_at = NULL "

/* A grant's values, as GRANT_SET writes them. */
typedef struct EgGrant
{
	Datum		worker;
	bool		worker_null;
	Datum		owner_pid;		/* with owner_backend_start; NULL when untracked */
	Datum		owner_backend_start;
	bool		owner_null;
	TimestampTz lease_expires_at;
} EgGrant;

/*
 * Owner columns of a grant: this backend, or NULL when not tracked; the
 * null flags use SPI's convention (' ' or 'n').
 */
extern void eg_owner_values(bool track_owner, Datum *pid, Datum *started, char *pid_null, char *started_null);

/* When a lease granted now ends: now(), the transaction's start, plus lease. */
extern TimestampTz eg_lease_end(Datum lease);

#endif							/* EXECGUARD_PG_GRANT_H */
