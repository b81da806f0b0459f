--
-- schema_owner: a role with CREATE on the database makes a schema called
-- execguard before the DBA's CREATE EXTENSION. The extension refuses to
-- install into it (its owner could swap the tables its SECURITY DEFINER
-- functions use) and leaves nothing behind; a schema a superuser owns is
-- accepted. Runs just before upgrade, which recreates the extension.
-- (No CONTEXT lines: from 18 on they quote the install script.)
--
\set SHOW_CONTEXT never
DROP EXTENSION execguard CASCADE;
-- CREATE EXTENSION makes the schema without making it a member of the
-- extension, so it outlives DROP EXTENSION.
DROP SCHEMA IF EXISTS execguard;
DROP ROLE IF EXISTS regress_execguard_mallory;
CREATE ROLE regress_execguard_mallory;
CREATE SCHEMA execguard AUTHORIZATION regress_execguard_mallory;
CREATE EXTENSION execguard;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS extensions FROM pg_extension WHERE extname = 'execguard';
SELECT count(*) AS objects_in_schema FROM pg_class WHERE relnamespace = 'execguard'::regnamespace;
-- Nor can an installed extension be updated once its schema changed hands.
ALTER SCHEMA execguard OWNER TO CURRENT_USER;
CREATE EXTENSION execguard VERSION '0.4.0';
ALTER SCHEMA execguard OWNER TO regress_execguard_mallory;
ALTER EXTENSION execguard UPDATE;
\echo :LAST_ERROR_SQLSTATE
SELECT extversion FROM pg_extension WHERE extname = 'execguard';
DROP EXTENSION execguard CASCADE;
DROP SCHEMA execguard;
DROP ROLE regress_execguard_mallory;
-- Without a schema of that name the extension creates its own.
CREATE EXTENSION execguard;
SELECT r.rolsuper AS schema_owner_is_superuser
  FROM pg_namespace AS n JOIN pg_roles AS r ON r.oid = n.nspowner WHERE n.nspname = 'execguard';
