-- extension/execguard--0.2.0--0.3.0.sql
--
-- Upgrade from 0.2.0, and the last step of every fresh install (see
-- execguard--0.1.0--0.2.0.sql).
--
-- What changes, and why:
--
--   execguard.execution_state(execution_id, fencing_token)
--       A heartbeat, completion or release that returns false says only
--       "stop": the grant is no longer the caller's. Why matters to whoever
--       reports it. A cancelled execution is an expected stop, while one
--       taken over means the holder lost its lease (paused, partitioned, too
--       slow to heartbeat). A runner on a direct session hears cancellations
--       through NOTIFY execguard_cancel, but notifications can be missed (a
--       reconnect) and do not pass through a transaction-mode pooler at
--       all. There the runner learns a cancellation from its heartbeat
--       alone, and asks this function which of the two it was.
--
--       It answers for the grant named by the token: the execution's status
--       while the token is still the newest grant ('running', 'cancelled',
--       'completed', 'failed', or 'pending' after a release or a scheduled
--       retry), 'stale' once the execution has been granted again, NULL when
--       there is no such execution. It reads one row by primary key and
--       writes nothing. The runner role may call it: a runner may already
--       claim any key, so the status of an execution tells it nothing it
--       could not learn by claiming.

\echo Use "ALTER EXTENSION execguard UPDATE TO '0.3.0'" to load this file. \quit

CREATE FUNCTION execguard.execution_state(execution_id bigint, fencing_token bigint)
RETURNS text
LANGUAGE sql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN e.fencing_token = $2 THEN e.status::text ELSE 'stale' END
      FROM execguard.executions AS e
     WHERE e.execution_id = $1
$$;
REVOKE ALL ON FUNCTION execguard.execution_state(bigint, bigint) FROM PUBLIC;
COMMENT ON FUNCTION execguard.execution_state(bigint, bigint) IS
    'Status of an execution for the holder of this fencing token: its status, or stale once granted again';
