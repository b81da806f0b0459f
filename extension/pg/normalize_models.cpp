/*
 * extension/pg/normalize_models.cpp
 *
 * execguard.normalize_models(models jsonb, default_regions text[]): the
 * PostgreSQL adapter around the core's normalisation (extension/core).
 *
 * The Jsonb is read in place into the core's flat eg_json_node form (strings
 * are borrowed from the detoasted datum, nothing is printed or re-parsed),
 * and the result is built with pushJsonbValue. The core's result lives in
 * one malloc'd arena, freed in PG_FINALLY once the Jsonb is built.
 */
/* PostgreSQL declares its API with C linkage only when asked to. */
extern "C"
{
#include "postgres.h"

#include "catalog/pg_type_d.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "core_call.h"
}

extern "C"
{
PG_FUNCTION_INFO_V1(execguard_normalize_models);
}

/*
 * The node and open-container arrays are kept for the backend's lifetime in
 * TopMemoryContext and reused: allocating a few hundred kilobytes per call
 * and giving them back made the kernel map and fault in fresh pages on
 * every call, which cost more than the normalisation itself. Buffers grown
 * past kKeptBytes are released after the call.
 */
static eg_json_node *node_buffer = NULL;
static size_t node_capacity = 0;
static size_t *open_buffer = NULL;
static size_t open_capacity = 0;

#define KEPT_NODE_BYTES (4 * 1024 * 1024)

static void *
grow_buffer(void *buffer, size_t *capacity, size_t needed, size_t element_size)
{
	size_t		new_capacity = *capacity > 0 ? *capacity : 64;

	if (needed <= *capacity)
		return buffer;
	while (new_capacity < needed)
		new_capacity *= 2;
	buffer = buffer == NULL ?
		MemoryContextAllocHuge(TopMemoryContext, new_capacity * element_size) :
		repalloc_huge(buffer, new_capacity * element_size);
	*capacity = new_capacity;
	return buffer;
}

static void
release_large_buffers(void)
{
	if (node_capacity * sizeof(eg_json_node) > KEPT_NODE_BYTES)
	{
		pfree(node_buffer);
		node_buffer = NULL;
		node_capacity = 0;
	}
}

/* Jsonb → eg_json_node array (pre-order), see execguard/bridge.h. */
static eg_json_node *
jsonb_to_nodes(Jsonb *document, size_t *n_nodes)
{
	size_t		n = 0;
	eg_json_node *nodes;
	size_t		depth = 0;
	size_t	   *open;
	JsonbIterator *it;

	/* A typical model entry is an object of a few members: start there. */
	node_buffer = (eg_json_node *) grow_buffer(node_buffer, &node_capacity,
											   (size_t) JsonContainerSize(&document->root) * 6 + 16,
											   sizeof(eg_json_node));
	open_buffer = (size_t *) grow_buffer(open_buffer, &open_capacity, 16, sizeof(size_t));
	nodes = node_buffer;
	open = open_buffer;
	it = JsonbIteratorInit(&document->root);
	JsonbValue	value;
	JsonbIteratorToken token;
	eg_slice	key = {NULL, 0};
	bool		raw_scalar = false;

	while ((token = JsonbIteratorNext(&it, &value, false)) != WJB_DONE)
	{
		eg_json_node *node;

		if (token == WJB_KEY)
		{
			key.data = value.val.string.val;
			key.len = value.val.string.len;
			continue;
		}
		if (token == WJB_END_ARRAY || token == WJB_END_OBJECT)
		{
			if (depth == 0)
			{
				/* the end of a raw scalar's pseudo array */
				if (!raw_scalar)
					elog(ERROR, "execguard: unbalanced Jsonb iteration");
				continue;
			}
			nodes[open[--depth]].end = n;
			continue;
		}
		if (n == node_capacity)
			nodes = node_buffer = (eg_json_node *) grow_buffer(node_buffer, &node_capacity, n + 1,
															   sizeof(eg_json_node));
		node = &nodes[n];
		node->key = key;
		key.data = NULL;
		key.len = 0;
		node->text.data = NULL;
		node->text.len = 0;
		node->end = n + 1;
		if (token == WJB_BEGIN_ARRAY || token == WJB_BEGIN_OBJECT)
		{
			/* A raw scalar is stored as a one-element pseudo array. */
			if (token == WJB_BEGIN_ARRAY && value.val.array.rawScalar)
			{
				raw_scalar = true;
				continue;
			}
			node->kind = token == WJB_BEGIN_ARRAY ? EG_JSON_ARRAY : EG_JSON_OBJECT;
			if (depth == open_capacity)
				open = open_buffer = (size_t *) grow_buffer(open_buffer, &open_capacity, depth + 1,
															sizeof(size_t));
			open[depth++] = n++;
			continue;
		}
		/* WJB_ELEM or WJB_VALUE: a scalar */
		switch (value.type)
		{
			case jbvString:
				node->kind = EG_JSON_STRING;
				node->text.data = value.val.string.val;
				node->text.len = value.val.string.len;
				break;
			case jbvNumeric:
				node->kind = EG_JSON_NUMBER;
				break;
			case jbvBool:
				node->kind = value.val.boolean ? EG_JSON_TRUE : EG_JSON_FALSE;
				break;
			default:
				node->kind = EG_JSON_NULL;
				break;
		}
		n++;
	}
	*n_nodes = n;
	return nodes;
}

static void
push_key(JsonbParseState **state, const char *key)
{
	JsonbValue	value;

	value.type = jbvString;
	value.val.string.val = (char *) key;
	value.val.string.len = (int) strlen(key);
	pushJsonbValue(state, WJB_KEY, &value);
}

static void
push_string(JsonbParseState **state, JsonbIteratorToken token, eg_slice text)
{
	JsonbValue	value;

	if (text.data == NULL)
		value.type = jbvNull;
	else
	{
		value.type = jbvString;
		value.val.string.val = (char *) text.data;
		value.val.string.len = (int) text.len;
	}
	pushJsonbValue(state, token, &value);
}

/* [{id, name, provider, regions}] */
static Jsonb *
models_to_jsonb(const eg_models *models)
{
	JsonbParseState *state = NULL;
	JsonbValue *result;

	pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	for (size_t i = 0; i < models->n_models; i++)
	{
		const eg_model_out *model = &models->models[i];

		pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
		push_key(&state, "id");
		push_string(&state, WJB_VALUE, model->id);
		push_key(&state, "name");
		push_string(&state, WJB_VALUE, model->name);
		push_key(&state, "provider");
		push_string(&state, WJB_VALUE, model->provider);
		push_key(&state, "regions");
		pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
		for (size_t r = 0; r < model->n_regions; r++)
			push_string(&state, WJB_ELEM, models->regions[model->first_region + r]);
		pushJsonbValue(&state, WJB_END_ARRAY, NULL);
		pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	}
	result = pushJsonbValue(&state, WJB_END_ARRAY, NULL);
	return JsonbValueToJsonb(result);
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
	eg_json_node *nodes;
	size_t		n_nodes;
	eg_models	result;
	eg_error	error;
	eg_status	status;
	Jsonb	   *volatile out = NULL;

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

	nodes = jsonb_to_nodes(models, &n_nodes);
	status = eg_normalize_model_tree(nodes, n_nodes, region_slices, (size_t) n_regions, &result, &error);
	release_large_buffers();
	if (status != EG_OK)
		eg_raise(status, &error);
	PG_TRY();
	{
		out = models_to_jsonb(&result);
	}
	PG_FINALLY();
	{
		eg_models_free(&result);
	}
	PG_END_TRY();
	PG_RETURN_JSONB_P(out);
}
