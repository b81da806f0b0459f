/*
 * extension/pg/settings.h
 *
 * execguard's configuration parameters (GUCs), defined in _PG_init.
 */
#ifndef EXECGUARD_PG_SETTINGS_H
#define EXECGUARD_PG_SETTINGS_H

/*
 * execguard.rescue_interval (ms): how often a busy claim_next session also
 * runs the rescue of expired or orphaned claims; 0 means every call.
 */
extern int	eg_rescue_interval_ms;

/*
 * execguard.direct_writes: the hot writes go through the table access
 * method (writer.h) rather than SQL statements. Off is for
 * diagnosis and for running the test suites on both paths.
 */
extern bool eg_direct_writes;

/*
 * execguard.claims_require_submitted_job: claim_execution refuses (outcome
 * 'unknown') a key that has no row, instead of creating it. Superuser-only,
 * so that the roles it restrains cannot turn it off.
 */
extern bool eg_claims_require_submitted_job;

extern void eg_define_settings(void);

#endif							/* EXECGUARD_PG_SETTINGS_H */
