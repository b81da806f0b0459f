--
-- normalize_models errors: every one names the offending position, carries
-- its SQLSTATE (shown after each error), and never yields a partial result.
--

-- Not an array.
SELECT execguard.normalize_models('{"models": ["a"]}');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.normalize_models('"llama3.2-1b"');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.normalize_models('null');
\echo :LAST_ERROR_SQLSTATE

-- An element of another type.
SELECT execguard.normalize_models('["a", 1]');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.normalize_models('["a", "b", null]');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.normalize_models('[["a"]]');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.normalize_models('[true]');
\echo :LAST_ERROR_SQLSTATE

-- Missing, null, empty or non-string id.
SELECT execguard.normalize_models('["a", {"name": "B"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.normalize_models('[{"id": null}]');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.normalize_models('[{"id": ""}]');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.normalize_models('[{"id": " \t "}]');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.normalize_models('["a", ""]');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.normalize_models('["a", "   "]');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.normalize_models('[{"id": 42}]');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.normalize_models('[{"id": ["a"]}]');
\echo :LAST_ERROR_SQLSTATE

-- Non-string name or provider.
SELECT execguard.normalize_models('[{"id": "a", "name": 5}]');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.normalize_models('[{"id": "a", "provider": {"name": "meta"}}]');
\echo :LAST_ERROR_SQLSTATE

-- Regions: not an array, a non-string region, an empty region.
SELECT execguard.normalize_models('["a", "b", "c", {"id": "d", "regions": ["us-east", 7]}]');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.normalize_models('[{"id": "a", "regions": [null]}]');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.normalize_models('[{"id": "a", "regions": "us-east"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.normalize_models('[{"id": "a", "regions": ["us-east", "  "]}]');
\echo :LAST_ERROR_SQLSTATE

-- Control characters inside an id or a region (surrounding whitespace is
-- trimmed first, so these are inside).
SELECT execguard.normalize_models('["llama\u0001b"]');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.normalize_models('["a", {"id": "llama\tb"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.normalize_models('[{"id": "a", "regions": ["us\neast"]}]');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.normalize_models('["a\u007fb"]');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.normalize_models('[{"id": "a", "name": "A\u0007B"}]');
\echo :LAST_ERROR_SQLSTATE

-- Over 200 bytes (bytes, not characters: 101 two-byte characters fail).
SELECT execguard.normalize_models(jsonb_build_array(repeat('a', 201)));
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.normalize_models(jsonb_build_array(jsonb_build_object('id', repeat('é', 101))));
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.normalize_models(
    jsonb_build_array('a', jsonb_build_object('id', 'b', 'regions', jsonb_build_array('r', repeat('r', 201)))));
\echo :LAST_ERROR_SQLSTATE
-- Exactly 200 bytes of two-byte characters is still accepted.
SELECT octet_length(execguard.normalize_models(jsonb_build_array(repeat('é', 100))) -> 0 ->> 'id') AS id_bytes;
-- A long offending value is shown shortened, never in full.
SELECT execguard.normalize_models(jsonb_build_array(jsonb_build_object('id', 'a', repeat('k', 300), 1)));
\echo :LAST_ERROR_SQLSTATE

-- More than 10,000 entries: a program limit, not an input error.
SELECT execguard.normalize_models((SELECT jsonb_agg('m'::text) FROM generate_series(1, 10001)));
\echo :LAST_ERROR_SQLSTATE

-- Unknown keys (a typo must not silently drop the regions).
SELECT execguard.normalize_models('[{"id": "a", "region": ["us-east"]}]');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.normalize_models('["a", {"id": "b", "Name": "B"}]');
\echo :LAST_ERROR_SQLSTATE

-- default_regions: NULL elements, empty, control characters, too long.
SELECT execguard.normalize_models('["a"]', '{us-east,NULL}');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.normalize_models('["a"]', '{us-east,""}');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.normalize_models('["a"]', ARRAY[E'us\teast']);
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.normalize_models('["a"]', ARRAY[repeat('r', 201)]);
\echo :LAST_ERROR_SQLSTATE

-- The first error in input order is the one reported.
SELECT execguard.normalize_models('[1, {"id": ""}]');
\echo :LAST_ERROR_SQLSTATE
