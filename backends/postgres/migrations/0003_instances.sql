-- The instance registry: one row per service process, by service and
-- instance id, with its heartbeat and the queues it consumes. nonce is
-- unique per process: a row under the same service and id with another
-- nonce and a recent heartbeat belongs to another live process.
CREATE TABLE quantum_flow_instances (
    service      text NOT NULL,
    id           text NOT NULL,
    host         text NOT NULL,
    pid          integer NOT NULL,
    version      text NOT NULL DEFAULT '',
    nonce        text NOT NULL,
    started_at   timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL,
    consumers    jsonb NOT NULL DEFAULT '[]',
    PRIMARY KEY (service, id)
);

-- Each broadcast queue's latest message, which instances that join later
-- receive.
CREATE TABLE quantum_flow_latest (
    queue_name   text PRIMARY KEY,
    id           text NOT NULL,
    payload      bytea NOT NULL,
    metadata     jsonb NOT NULL DEFAULT '{}',
    published_at timestamptz NOT NULL
);
