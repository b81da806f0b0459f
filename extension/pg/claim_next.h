/*
 * extension/pg/claim_next.h
 *
 * What other operations tell claim_next: the session's own release, fail
 * and retry_job make work due below where its next scan of pending rows
 * would start (claim_next.cpp, pending_scan_after).
 */
#ifndef EXECGUARD_PG_CLAIM_NEXT_H
#define EXECGUARD_PG_CLAIM_NEXT_H

/* This session's next claim_next scans pending rows from the oldest. */
extern void eg_claim_next_from_oldest(void);

#endif							/* EXECGUARD_PG_CLAIM_NEXT_H */
