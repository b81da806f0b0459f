/*
 * extension/pg/normalize_models.cpp
 *
 * execguard.normalize_models(models jsonb, default_regions text[]): the
 * PostgreSQL adapter around the core's normalisation (extension/core).
 *
 * The Jsonb is read in place into the core's flat eg_json_node form (strings
 * are borrowed from the detoasted datum, nothing is printed or re-parsed),
 * and the result is written in Jsonb's binary format (models_to_jsonb).
 * The core's result lives in one malloc'd arena, freed in PG_FINALLY once
 * the Jsonb is built.
 */
/* PostgreSQL declares its API with C linkage only when asked to. */
extern "C"
{
#include "postgres.h"

#include "catalog/pg_type_d.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "core_call.h"
#include "jsonb_writer.h"
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
	size_t		tokens = 0;

	while ((token = JsonbIteratorNext(&it, &value, false)) != WJB_DONE)
	{
		eg_json_node *node;

		/* Nothing here has a destructor; the buffers are kept for reuse. */
		if ((++tokens & 4095) == 0)
			CHECK_FOR_INTERRUPTS();

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

/*
 * The result, [{id, name, provider, regions}], is written straight in
 * Jsonb's binary format (jsonb_writer.h). Object keys sorted by length,
 * then bytes: id, name, regions, provider.
 */
#define MODEL_KEYS 4
static const eg_slice kModelKeys[MODEL_KEYS] = {{"id", 2}, {"name", 4}, {"regions", 7}, {"provider", 8}};
#define MODEL_KEY_BYTES (2 + 4 + 7 + 8)

size_t
eg_models_container_bound(const eg_models *models)
{
	size_t		size = sizeof(uint32) + sizeof(JEntry) * models->n_models;

	for (size_t i = 0; i < models->n_models; i++)
	{
		const eg_model_out *model = &models->models[i];

		size += 3 + sizeof(uint32) + sizeof(JEntry) * 2 * MODEL_KEYS + MODEL_KEY_BYTES;
		size += model->id.len + model->name.len + (model->provider.data ? model->provider.len : 0);
		size += 3 + sizeof(uint32) + sizeof(JEntry) * model->n_regions;
		for (size_t r = 0; r < model->n_regions; r++)
			size += models->regions[model->first_region + r].len;
	}
	return size;
}

/* Writes an array of strings at "start" (aligned); returns its end. */
static size_t
put_string_array(char *buffer, size_t start, const eg_slice *items, size_t n)
{
	size_t		entries = start + sizeof(uint32);
	size_t		data = entries + sizeof(JEntry) * n;
	size_t		end = data;

	put_uint32(buffer, start, (uint32) n | JB_FARRAY);
	for (size_t i = 0; i < n; i++)
	{
		size_t		length = put_string(buffer, &end, items[i]);

		put_entry(buffer, entries, i, JENTRY_ISSTRING, end - data, length);
	}
	return end;
}

/* Writes one model's object at "start" (aligned); returns its end. */
static size_t
put_model(char *buffer, size_t start, const eg_models *models, const eg_model_out *model)
{
	const eg_slice strings[MODEL_KEYS + 2] = {kModelKeys[0], kModelKeys[1], kModelKeys[2], kModelKeys[3],
											  model->id, model->name};
	size_t		entries = start + sizeof(uint32);
	size_t		data = entries + sizeof(JEntry) * 2 * MODEL_KEYS;
	size_t		end = data;
	size_t		length;

	put_uint32(buffer, start, MODEL_KEYS | JB_FOBJECT);
	/* the keys, then the values id and name */
	for (size_t child = 0; child < MODEL_KEYS + 2; child++)
	{
		length = put_string(buffer, &end, strings[child]);
		put_entry(buffer, entries, child, JENTRY_ISSTRING, end - data, length);
	}
	/* regions, after zero padding to 4 bytes (the buffer is zeroed) */
	length = put_string_array(buffer, align4(end), &models->regions[model->first_region],
							  model->n_regions) - end;
	end += length;
	put_entry(buffer, entries, MODEL_KEYS + 2, JENTRY_ISCONTAINER, end - data, length);
	/* provider */
	if (model->provider.data == NULL)
		put_entry(buffer, entries, MODEL_KEYS + 3, JENTRY_ISNULL, end - data, 0);
	else
	{
		length = put_string(buffer, &end, model->provider);
		put_entry(buffer, entries, MODEL_KEYS + 3, JENTRY_ISSTRING, end - data, length);
	}
	return end;
}

size_t
eg_put_models_container(char *buffer, size_t start, const eg_models *models)
{
	return put_container_array(buffer, start, models->n_models,
							   [models](char *out, size_t child_start, size_t i) {
								   return put_model(out, child_start, models, &models->models[i]);
							   });
}

static Jsonb *
models_to_jsonb(const eg_models *models)
{
	size_t		bound = VARHDRSZ + eg_models_container_bound(models);
	char	   *buffer;
	size_t		end;

	/*
	 * One bound for every container: each JEntry offset or length fits when
	 * the whole result does.
	 */
	if (bound > JENTRY_OFFLENMASK)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the normalized models would take %zu bytes, more than a jsonb value can hold (%d)",
						bound, JENTRY_OFFLENMASK)));
	buffer = (char *) palloc0(bound);
	end = eg_put_models_container(buffer, VARHDRSZ, models);
	Assert(end <= bound);
	SET_VARSIZE(buffer, end);
	return (Jsonb *) buffer;
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
		if ((i & 4095) == 4095)
			CHECK_FOR_INTERRUPTS();
		if (region_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("default_regions[%d] must not be null", i)));
		region_slices[i] = eg_slice_of_text(DatumGetTextPP(region_datums[i]));
	}

	nodes = jsonb_to_nodes(models, &n_nodes);
	eg_core_interruptible();
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
