-- Publish-side deduplication (issue 12). A message published with a dedup
-- key (metadata quantumflow_dedup_key) claims the key on its queue for the
-- queue's dedup window; a second publish of the key within the window
-- stores nothing and reports the first message's id.

-- A queue's dedup window; NULL is the default (pubsub.DefaultDedupWindow,
-- which the backend passes in, so that it is said in one place).
ALTER TABLE quantum_flow_queues ADD COLUMN dedup_window_ms bigint;

-- One row per key claimed on a queue: the id of the message that claimed
-- it and when the claim ends. A publish whose key conflicts with an
-- expired row takes the row over, so a key costs one row however often it
-- is published; rows of keys never published again are deleted in
-- batches through the expiry index (Driver.expireDedup), so the table
-- holds about one window's keys. owner is the publish statement that
-- claimed the key: the statement compares it with its own to tell the
-- keys it claimed from the duplicates. Messages without a key never touch
-- this table.
CREATE TABLE quantum_flow_dedup (
    queue_name text NOT NULL,
    dedup_key  text NOT NULL,
    id         text NOT NULL,
    expires_at timestamptz NOT NULL,
    owner      text NOT NULL,
    PRIMARY KEY (queue_name, dedup_key)
);

CREATE INDEX quantum_flow_dedup_expires_idx ON quantum_flow_dedup (expires_at);

-- Rows are inserted, taken over and deleted all the time: vacuum early.
ALTER TABLE quantum_flow_dedup SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0
);
