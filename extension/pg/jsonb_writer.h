/*
 * extension/pg/jsonb_writer.h
 *
 * Writing Jsonb's binary format (utils/jsonb.h) straight into one buffer
 * sized up front, for results too big to build through a JsonbValue tree:
 * normalize_models' result, and submit_job's canonical spec (jobs.spec),
 * whose tree took about 0.9 KB per question in jsonb_in, 900 MB for a job
 * of 1,000,000 questions. Building it with pushJsonbValue and
 * JsonbValueToJsonb also sorts every object's keys and grows the output by
 * doubling and copying. The layout is the one convertToJsonb produces, byte
 * for byte (the regression tests compare the images, see
 * sql/normalize_models.sql and sql/big_inputs.sql):
 *
 *   container  uint32 header (count | JB_FARRAY or JB_FOBJECT), then one
 *              JEntry per child (an object's keys first, then its values),
 *              then the children's data in the same order. Each container
 *              starts 4-byte aligned, and the padding before it counts as
 *              part of the child's length in the parent's JEntry; a
 *              numeric is aligned the same way.
 *   JEntry     type bits | length of the child, except every
 *              JB_OFFSET_STRIDE-th child, which stores its end offset from
 *              the start of the data area, with JENTRY_HAS_OFF.
 *   object     keys sorted by length, then bytes.
 *
 * The buffer must be zeroed (palloc0): padding is never written.
 */
#ifndef EXECGUARD_PG_JSONB_WRITER_H
#define EXECGUARD_PG_JSONB_WRITER_H

#include "postgres.h"

#include "miscadmin.h"
#include "utils/jsonb.h"

#include "execguard/bridge.h"

static inline size_t
align4(size_t offset)
{
	return (offset + 3) & ~(size_t) 3;
}

static inline void
put_uint32(char *buffer, size_t offset, uint32 value)
{
	memcpy(buffer + offset, &value, sizeof(uint32));
}

/* The JEntry of the i-th child that ends at "end" and is "length" long. */
static inline uint32
child_entry(uint32 type, size_t i, size_t end, size_t length)
{
	if (i % JB_OFFSET_STRIDE == 0)
		return type | (uint32) end | JENTRY_HAS_OFF;
	return type | (uint32) length;
}

/* Sets the JEntry of a container's i-th child, which ends at data + end. */
static inline void
put_entry(char *buffer, size_t entries, size_t i, uint32 type, size_t end, size_t length)
{
	put_uint32(buffer, entries + sizeof(JEntry) * i, child_entry(type, i, end, length));
}

/* Appends the bytes of a string child at *end; returns its length. */
static inline size_t
put_string(char *buffer, size_t *end, eg_slice text)
{
	memcpy(buffer + *end, text.data, text.len);
	*end += text.len;
	return text.len;
}

/*
 * Writes an array of n containers at "start" (aligned): the header, then
 * for each i the child that put_child(buffer, child_start, i) writes at
 * child_start (aligned) and returns the end of; returns the array's end.
 * Polls for interrupts every 4,096 children (a job's questions). A
 * template, so C++ linkage: the .cpp files include this header inside
 * their extern "C" block.
 */
extern "C++"
{
template <typename PutChild>
static inline size_t
put_container_array(char *buffer, size_t start, size_t n, PutChild put_child)
{
	size_t		entries = start + sizeof(uint32);
	size_t		data = entries + sizeof(JEntry) * n;
	size_t		end = data;

	put_uint32(buffer, start, (uint32) n | JB_FARRAY);
	for (size_t i = 0; i < n; i++)
	{
		size_t		length = put_child(buffer, align4(end), i) - end;

		end += length;
		put_entry(buffer, entries, i, JENTRY_ISCONTAINER, end - data, length);
		if ((i & 4095) == 4095)
			CHECK_FOR_INTERRUPTS();
	}
	return end;
}
}

/*
 * normalize_models' array [{id, name, provider, regions}]: bytes at most
 * for the container (exact but for alignment padding), and the writer of
 * the container at "start" (aligned), which returns its end
 * (normalize_models.cpp).
 */
extern size_t eg_models_container_bound(const eg_models *models);
extern size_t eg_put_models_container(char *buffer, size_t start, const eg_models *models);

#endif							/* EXECGUARD_PG_JSONB_WRITER_H */
