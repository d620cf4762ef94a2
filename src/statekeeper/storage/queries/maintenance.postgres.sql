-- Table maintenance on PostgreSQL (see storage/postgres_maintenance.py).

-- name: maintenance_tables
-- statekeeper's tables in the schema in use, what the statistics system counts of them
-- since their last vacuum and analyze, and whether this role may maintain them (VACUUM
-- of a table one does not own only warns and skips it).
SELECT s.relname, s.n_live_tup, s.n_dead_tup, s.n_mod_since_analyze,
       pg_has_role(current_user, c.relowner, 'USAGE') AS owned
FROM pg_stat_user_tables s
JOIN pg_class c ON c.oid = s.relid
WHERE s.schemaname = current_schema() AND s.relname LIKE 'sk\_%'
ORDER BY s.relname;
