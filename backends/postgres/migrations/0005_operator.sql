-- Operator controls: the queues paused (quantumflow pause QUEUE). Every
-- process that consumes reads this table every half second and takes no
-- message of a queue listed here (nor of its instances' queues).
CREATE TABLE quantum_flow_paused_queues (
    queue_name text PRIMARY KEY,
    paused_at  timestamptz NOT NULL DEFAULT now()
);
