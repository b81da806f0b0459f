/*
 * extension/pg/srf.h
 *
 * Set-returning functions in materialize mode.
 */
#ifndef EXECGUARD_PG_SRF_H
#define EXECGUARD_PG_SRF_H

#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/tuplestore.h"

static inline ReturnSetInfo *
eg_begin_srf(FunctionCallInfo fcinfo)
{
	InitMaterializedSRF(fcinfo, 0);
	return (ReturnSetInfo *) fcinfo->resultinfo;
}

#endif							/* EXECGUARD_PG_SRF_H */
