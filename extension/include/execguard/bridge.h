/*
 * extension/include/execguard/bridge.h
 *
 * The one door between PostgreSQL-facing code (extension/pg) and the C++
 * core (extension/core). Plain C types only, so PostgreSQL headers and this
 * header can share a translation unit while the core's STL and exceptions
 * stay on the other side:
 *
 *   - every function is noexcept: a C++ exception never reaches a frame that
 *     PostgreSQL can longjmp through; failures come back as a status and a
 *     message copied into a fixed buffer;
 *   - results are malloc'd (eg_text), owned by the caller and released with
 *     eg_text_free(); the adapter copies them into palloc'd memory.
 */
#ifndef EXECGUARD_BRIDGE_H
#define EXECGUARD_BRIDGE_H

#include <stddef.h>

#ifdef __cplusplus
#define EG_NOEXCEPT noexcept
extern "C" {
#else
#define EG_NOEXCEPT
#endif

typedef enum eg_status {
    EG_OK = 0,
    EG_INVALID_PARAMETER, /* SQLSTATE 22023 */
    EG_PROGRAM_LIMIT,     /* SQLSTATE 54000 */
    EG_OUT_OF_MEMORY,     /* SQLSTATE 53200 */
    EG_INTERNAL           /* SQLSTATE XX000: a bug in execguard */
} eg_status;

#define EG_MESSAGE_SIZE 512

typedef struct eg_error {
    char message[EG_MESSAGE_SIZE];
} eg_error;

typedef struct eg_text {
    char* data; /* malloc'd, NUL-terminated */
    size_t len;
} eg_text;

/* A borrowed string: not NUL-terminated. */
typedef struct eg_slice {
    const char* data;
    size_t len;
} eg_slice;

/*
 * A JSON document as a flat array in document order (pre-order): a
 * container's members follow it, and `end` is the index just past its last
 * descendant, so a reader can skip a member without visiting it. Strings
 * are borrowed (for the PostgreSQL adapter: straight out of the Jsonb).
 */
typedef enum eg_json_kind {
    EG_JSON_NULL,
    EG_JSON_FALSE,
    EG_JSON_TRUE,
    EG_JSON_NUMBER,
    EG_JSON_STRING,
    EG_JSON_ARRAY,
    EG_JSON_OBJECT
} eg_json_kind;

typedef struct eg_json_node {
    eg_json_kind kind;
    eg_slice key;  /* member name when the parent is an object */
    eg_slice text; /* the value, for a string */
    size_t end;    /* index just past this node's subtree */
} eg_json_node;

/*
 * normalize_models() on a document already in eg_json_node form. The
 * result's strings live in one malloc'd arena; free it with
 * eg_models_free(). provider.data is NULL for JSON null.
 */
typedef struct eg_model_out {
    eg_slice id;
    eg_slice name;
    eg_slice provider;
    size_t first_region; /* index into eg_models.regions */
    size_t n_regions;
} eg_model_out;

typedef struct eg_models {
    eg_model_out* models;
    size_t n_models;
    eg_slice* regions;
    void* arena;
} eg_models;

eg_status eg_normalize_model_tree(const eg_json_node* nodes, size_t n_nodes, const eg_slice* default_regions,
                                  size_t n_default_regions, eg_models* out, eg_error* error) EG_NOEXCEPT;

void eg_models_free(eg_models* models) EG_NOEXCEPT;

/* normalize_models(models, default_regions) on JSON text. */
eg_status eg_normalize_models(eg_slice models_json, const eg_slice* default_regions, size_t n_default_regions,
                              eg_text* out, eg_error* error) EG_NOEXCEPT;

/* submit_job's plan: see execguard/core/job_spec.hpp for the JSON it returns. */
eg_status eg_plan_job(eg_slice spec_json, eg_text* out, eg_error* error) EG_NOEXCEPT;

typedef enum eg_key_part {
    EG_KEY_JOB_ID,     /* trimmed */
    EG_KEY_MODEL_ID,   /* trimmed, lower-cased */
    EG_KEY_REGION,     /* trimmed, lower-cased */
    EG_KEY_QUESTION_ID /* trimmed; '' allowed (the single-prompt unit) */
} eg_key_part;

/*
 * Canonical spelling of one part of an execution key, exactly as
 * submit_job stores it. `out` must have room for raw.len + 1 bytes; the
 * canonical form is never longer than the input.
 */
eg_status eg_canonical_key_part(eg_key_part part, eg_slice raw, char* out, size_t* out_len,
                                eg_error* error) EG_NOEXCEPT;

void eg_text_free(eg_text* text) EG_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif /* EXECGUARD_BRIDGE_H */
