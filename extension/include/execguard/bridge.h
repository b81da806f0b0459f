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
    EG_INTERNAL,          /* SQLSTATE XX000: a bug in execguard */
    EG_INTERRUPTED        /* the interrupt check said stop: see below */
} eg_status;

/*
 * Query cancel. The core polls `check` every few thousand iterations of
 * every loop over input; when it returns non-zero the core unwinds and the
 * call returns EG_INTERRUPTED, after which the caller raises the pending
 * interrupt (CHECK_FOR_INTERRUPTS). `check` must not longjmp or throw: it
 * only reads whether an interrupt is pending. NULL (the default) never
 * stops. The setting is kept until changed.
 */
typedef int (*eg_interrupt_check)(void);

void eg_set_interrupt_check(eg_interrupt_check check) EG_NOEXCEPT;

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

/*
 * The whole plan of a job as JSON text, every unit spelled out: see
 * execguard/core/job_spec.hpp. For tests and the fuzzer; its size grows with
 * the number of units, so submit_job uses eg_job_plan_open instead.
 */
eg_status eg_plan_job(eg_slice spec_json, eg_text* out, eg_error* error) EG_NOEXCEPT;

/*
 * submit_job's plan without its units: the caller expands them, a chunk at
 * a time, as every model × each of its regions × every question, in that
 * order (models[i], then regions[models[i].first_region + r], then
 * questions[q]). Every string is borrowed from the plan, which the core
 * owns until eg_job_plan_free (call it also when PostgreSQL errors out, in
 * PG_FINALLY). On failure nothing is left to free.
 */
typedef struct eg_question_out {
    eg_slice id; /* '' for the single prompt of a job without questions */
    eg_slice prompt;
} eg_question_out;

typedef struct eg_job_plan {
    /* {"job_id", "max_attempts", "duplicates_removed", "regions"},
     * NUL-terminated; regions: every region any unit uses. The canonical
     * spec (jobs.spec) is {"models": as normalize_models returns them,
     * "questions": [{"id", "prompt"}, ...], "params", "max_attempts"}, which
     * the caller writes from the fields below. */
    eg_slice header;
    eg_slice job_id;
    eg_slice params; /* JSON text of params, "null" when not given */
    int max_attempts;
    size_t duplicates_removed;
    size_t unit_count;
    const eg_model_out* models;
    size_t n_models;
    const eg_slice* regions;
    const eg_question_out* questions;
    size_t n_questions;
    void* impl; /* the core's, NULL once freed */
} eg_job_plan;

eg_status eg_job_plan_open(eg_slice spec_json, eg_job_plan* out, eg_error* error) EG_NOEXCEPT;

void eg_job_plan_free(eg_job_plan* plan) EG_NOEXCEPT;

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
