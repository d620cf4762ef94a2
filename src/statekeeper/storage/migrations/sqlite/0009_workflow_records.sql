-- Errors are recorded as JSON objects {"type", "message", "traceback"} (errors.ErrorRecord),
-- so a catch matches the type and the traceback is kept. Plain-text errors recorded before
-- ("Type: message") are converted here; sealed ones cannot be, and read as the message
-- of an "Error".

UPDATE sk_workflow_steps SET error = CASE
    WHEN instr(error, ':') = 0 AND instr(error, ' ') = 0
        THEN json_object('type', error, 'message', '', 'traceback', NULL)
    WHEN instr(error, ': ') > 1 AND instr(substr(error, 1, instr(error, ': ') - 1), ' ') = 0
        THEN json_object('type', substr(error, 1, instr(error, ': ') - 1),
                         'message', substr(error, instr(error, ': ') + 2),
                         'traceback', NULL)
    ELSE json_object('type', 'Error', 'message', error, 'traceback', NULL)
END
WHERE error IS NOT NULL AND substr(error, 1, 1) NOT IN ('{', char(30));

UPDATE sk_workflows SET error = CASE
    WHEN instr(error, ':') = 0 AND instr(error, ' ') = 0
        THEN json_object('type', error, 'message', '', 'traceback', NULL)
    WHEN instr(error, ': ') > 1 AND instr(substr(error, 1, instr(error, ': ') - 1), ' ') = 0
        THEN json_object('type', substr(error, 1, instr(error, ': ') - 1),
                         'message', substr(error, instr(error, ': ') + 2),
                         'traceback', NULL)
    ELSE json_object('type', 'Error', 'message', error, 'traceback', NULL)
END
WHERE error IS NOT NULL AND substr(error, 1, 1) NOT IN ('{', char(30));

UPDATE sk_messages SET last_error = CASE
    WHEN instr(last_error, ':') = 0 AND instr(last_error, ' ') = 0
        THEN json_object('type', last_error, 'message', '', 'traceback', NULL)
    WHEN instr(last_error, ': ') > 1 AND instr(substr(last_error, 1, instr(last_error, ': ') - 1), ' ') = 0
        THEN json_object('type', substr(last_error, 1, instr(last_error, ': ') - 1),
                         'message', substr(last_error, instr(last_error, ': ') + 2),
                         'traceback', NULL)
    ELSE json_object('type', 'Error', 'message', last_error, 'traceback', NULL)
END
WHERE last_error IS NOT NULL AND substr(last_error, 1, 1) NOT IN ('{', char(30));

-- A workflow's deadline (Unix time; NULL: none): past it the workflow ends timed_out.
ALTER TABLE sk_workflows ADD COLUMN deadline REAL;

-- A step's failed attempts are journaled at its position as kind 'attempt' until the
-- step's outcome replaces it (wf_record_step); no change of schema.
