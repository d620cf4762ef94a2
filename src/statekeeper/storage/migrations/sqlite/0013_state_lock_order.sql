-- Nothing to change on SQLite: one writer at a time, so state transactions cannot
-- deadlock (PostgreSQL's 0013 orders the locks of a transaction's keys).
SELECT 1;
