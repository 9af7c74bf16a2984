-- QuantumFlow's tables, as the seed names them. The runner sets search_path
-- to the configured schema, so names here are unqualified.

-- Queue definitions. Publishing or subscribing to an undeclared queue adds
-- it with the defaults.
CREATE TABLE quantum_flow_queues (
    name           text PRIMARY KEY,
    priority       integer NOT NULL DEFAULT 0,
    max_retries    integer NOT NULL DEFAULT 3,
    retry_delay_ms bigint NOT NULL DEFAULT 1000,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Every queue's messages, until they are acknowledged (deleted) or
-- dead-lettered (moved to quantum_flow_dlq). status is 'pending' while a
-- message waits, ready (available_at <= now()) or scheduled for a retry,
-- and 'processing' while a consumer holds its lease (locked_until).
CREATE TABLE quantum_flow_messages (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              text NOT NULL,
    queue_name      text NOT NULL,
    payload         bytea NOT NULL,
    metadata        jsonb NOT NULL DEFAULT '{}',
    priority        integer NOT NULL DEFAULT 0,
    status          text NOT NULL DEFAULT 'pending'
                    CONSTRAINT quantum_flow_messages_status_check CHECK (status IN ('pending', 'processing')),
    retry_count     integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    available_at    timestamptz NOT NULL DEFAULT now(),
    locked_until    timestamptz,
    locked_by       text,
    last_error      text,
    first_failed_at timestamptz,
    last_failed_at  timestamptz
);

-- The claim: next messages of a queue in delivery order. Partial, so that
-- leased rows and the dead index entries they leave behind stay out of it.
CREATE INDEX quantum_flow_messages_claim_idx
    ON quantum_flow_messages (queue_name, priority DESC, created_at, seq)
    WHERE status = 'pending';

-- Leases: expired ones are returned to their queue; stats count in-flight
-- messages per queue.
CREATE INDEX quantum_flow_messages_lease_idx
    ON quantum_flow_messages (queue_name, locked_until)
    WHERE status = 'processing';

-- Every message is inserted, updated once per delivery and deleted: the
-- table churns. Vacuum it after 1% of its rows (plus 1000) are dead instead
-- of the default 20%, without cost-based throttling, so dead tuples do not
-- pile up in front of the claim.
ALTER TABLE quantum_flow_messages SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);

-- Dead letters: messages that failed for good, with why, where and when.
-- id is the message's id; created_at is when it was dead-lettered.
CREATE TABLE quantum_flow_dlq (
    seq                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                 text NOT NULL,
    queue_name         text NOT NULL,
    payload            bytea NOT NULL,
    metadata           jsonb NOT NULL DEFAULT '{}',
    priority           integer NOT NULL DEFAULT 0,
    error              text NOT NULL DEFAULT '',
    attempts           integer NOT NULL DEFAULT 0,
    handler            text,
    service            text,
    first_failed_at    timestamptz,
    last_failed_at     timestamptz,
    message_created_at timestamptz NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX quantum_flow_dlq_created_idx ON quantum_flow_dlq (created_at DESC, seq DESC);
CREATE INDEX quantum_flow_dlq_queue_idx ON quantum_flow_dlq (queue_name, created_at DESC);
CREATE INDEX quantum_flow_dlq_id_idx ON quantum_flow_dlq (id);
