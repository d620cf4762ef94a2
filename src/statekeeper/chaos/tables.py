"""The tables the chaos workload (chaos/workload_app.py) writes its effects to, and
its one write: a try, and the effect once (a primary key on what it is for)."""

TABLES = """
CREATE TABLE IF NOT EXISTS effects (
    kind TEXT, key TEXT, host TEXT, at TIMESTAMPTZ DEFAULT clock_timestamp(),
    PRIMARY KEY (kind, key));
CREATE TABLE IF NOT EXISTS attempts (
    kind TEXT, key TEXT, host TEXT, at TIMESTAMPTZ DEFAULT clock_timestamp());
CREATE INDEX IF NOT EXISTS attempts_by_host ON attempts (host, at);
TRUNCATE effects, attempts;
"""
APPLY = """
WITH tried AS (INSERT INTO attempts (kind, key, host) VALUES ($1, $2, $3))
INSERT INTO effects (kind, key, host) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING
"""
