-- The audit log: one row per operator mutation (a dead-letter retry or
-- purge, a pause, a removal...), in the order they were recorded (id).
CREATE TABLE quantum_flow_audit (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL,
    role       text NOT NULL,
    remote     text NOT NULL DEFAULT '',
    action     text NOT NULL,
    queue_name text NOT NULL DEFAULT '',
    count      integer NOT NULL DEFAULT 0,
    detail     text NOT NULL DEFAULT '',
    error      text NOT NULL DEFAULT ''
);
