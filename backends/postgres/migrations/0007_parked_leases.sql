-- Slow messages out of the claim's way. A claim walks the queue index in
-- delivery order and skips leased rows by their status (migration 0002):
-- with 10k slow messages in flight at the head of a queue, every claim
-- read 10k rows first (about 3 ms a claim). A lease still held when the
-- engine first extends it (a third of the lease after the claim) is now
-- parked: parked_until, the lease's expiry like locked_until, takes its
-- row out of the queue index and into the index of parked leases by
-- expiry. A claim still changes no indexed column (not parked_until, and
-- locked_until stays out of every index) and stays heap-only; an extension
-- of a parked lease is a full update, once per slow message per third of
-- the lease. Every return to the queue (a nack, a give-back, an expired
-- lease) unparks.
ALTER TABLE quantum_flow_messages ADD COLUMN parked_until timestamptz;

-- Only a leased row can be parked. This also stops a release from before
-- this migration (whose reaper does not know the column) from returning a
-- parked row to its queue without unparking it: its statement fails, and
-- this release's reapers return the row.
ALTER TABLE quantum_flow_messages ADD CONSTRAINT quantum_flow_messages_parked_check
    CHECK (parked_until IS NULL OR status = 'processing');

CREATE INDEX quantum_flow_messages_ready_idx
    ON quantum_flow_messages (queue_name, priority DESC, created_at, seq)
    WHERE parked_until IS NULL;
DROP INDEX quantum_flow_messages_queue_idx;

-- Expired parked leases are found through this index: the reaper's cost
-- grows with the leases that expired, not with the table.
CREATE INDEX quantum_flow_messages_parked_idx
    ON quantum_flow_messages (parked_until)
    WHERE parked_until IS NOT NULL;

-- The backends that claim messages, each with when its heartbeat runs out.
-- An unparked lease belongs to a backend that is alive (it heartbeats) or
-- that died: the reaper reads the whole table for expired leases only
-- while some holder's heartbeat has run out (and once an hour, by one
-- backend, in case), instead of every half lease. A holder's row goes once
-- every lease it took has expired and was returned.
CREATE TABLE quantum_flow_lease_holders (
    holder      text PRIMARY KEY,
    alive_until timestamptz NOT NULL,
    lease_ms    bigint NOT NULL
);
