-- Table maintenance on PostgreSQL (see storage/postgres_maintenance.py).

-- name: maintenance_tables
-- statekeeper's tables in the schema in use, with what the statistics system counts of
-- them since their last vacuum and analyze.
SELECT relname, n_live_tup, n_dead_tup, n_mod_since_analyze
FROM pg_stat_user_tables
WHERE schemaname = current_schema() AND relname LIKE 'sk\_%'
ORDER BY relname;
