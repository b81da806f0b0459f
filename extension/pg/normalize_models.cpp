/*
 * extension/pg/normalize_models.cpp
 *
 * execguard.normalize_models(models jsonb, default_regions text[]): the
 * PostgreSQL adapter around the core's normalisation (extension/core).
 */
/* PostgreSQL declares its API with C linkage only when asked to. */
extern "C"
{
#include "postgres.h"

#include "catalog/pg_type_d.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/jsonb.h"

#include "core_call.h"
}

extern "C"
{
PG_FUNCTION_INFO_V1(execguard_normalize_models);
}

extern "C" Datum
execguard_normalize_models(PG_FUNCTION_ARGS)
{
	Jsonb	   *models = PG_GETARG_JSONB_P(0);
	ArrayType  *regions = PG_GETARG_ARRAYTYPE_P(1);
	Datum	   *region_datums;
	bool	   *region_nulls;
	int			n_regions;
	eg_slice   *region_slices;
	eg_slice	models_json;
	eg_text		result = {NULL, 0};
	eg_error	error;
	eg_status	status;

	deconstruct_array(regions, TEXTOID, -1, false, TYPALIGN_INT,
					  &region_datums, &region_nulls, &n_regions);
	region_slices = (eg_slice *) palloc(sizeof(eg_slice) * (n_regions > 0 ? n_regions : 1));
	for (int i = 0; i < n_regions; i++)
	{
		if (region_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("default_regions[%d] must not be null", i)));
		region_slices[i] = eg_slice_of_text(DatumGetTextPP(region_datums[i]));
	}

	models_json = eg_slice_of_cstring(eg_jsonb_to_cstring(models));
	status = eg_normalize_models(models_json, region_slices, (size_t) n_regions, &result, &error);
	PG_RETURN_DATUM(eg_cstring_to_jsonb(eg_take_text(status, &result, &error)));
}
