// Package mem is QuantumFlow's in-memory backend: a real queue held in the
// process's memory, for tests, demos and single-process deployments that
// can afford to lose what is queued when the process stops.
//
// Import it for its side effect of registering the "mem" URL scheme:
//
//	import _ "github.com/quantumflow/quantumflow/backends/mem"
//
//	backend, err := pubsub.Open(ctx, "mem://demo")
//
// # URLs
//
// mem://NAME opens the in-process storage called NAME. Every backend opened
// with the same NAME in one process shares its queues and dead letters, so
// several services of one process (the demo's Singularity instances and
// CentralCloud) talk to each other through it. The storage lives while at
// least one backend has it open: closing the last one discards it.
// mem:// (empty NAME) opens a private storage that nothing else shares.
// NAME is letters, digits, '_', '.' and '-'. The backend takes no query
// parameters: any is an error wrapping pubsub.ErrInvalidURL (pubsub.Open
// itself handles require=...).
//
// # Delivery semantics
//
// Each queue is a priority heap ordered by priority (higher first: the
// message's quantumflow_priority metadata, else the queue's declared
// priority), then publish order. The engine (package pubsub) receives
// from it for the backend's subscriptions of a queue, which compete with
// all others on the queue, in this backend and in every other backend
// sharing the storage. A message received and not yet settled or given
// back counts as in flight.
//
// Ack removes the message. Nack makes it available again at once, or after
// the delay asked for with pubsub.Delivery.RetryAfter: delayed messages
// wait in a second heap ordered by due time, with one timer per queue, and
// never hold up the others. Either way the attempt count grows by one and
// the first failure time is kept. A delivery marked with MarkDeadLetter
// moves to the dead letters when settled, in one step under the queue's
// lock. A message given back, or held by a subscription that ended, is
// ready again at once. Publish with several messages adds them all at
// once, or none.
//
// Delivery is at least once: a message handed out and not acked before
// its subscription ended is delivered again.
//
// A message published delayed or scheduled (pubsub.MetadataDeliverAt)
// waits in the heap of delayed retries until its time. The storage keeps
// the paused queues (pubsub.QueuePauser) and finds and deletes messages by
// id (pubsub.MessageStore).
//
// # Deduplication and payload limit
//
// Each queue keeps the dedup keys (pubsub.MetadataDedupKey) of the
// messages it stored, with their ids, for the queue's dedup window, in a
// map whose expired keys are dropped oldest first as publishes pass them:
// a publish of a key the map holds stores nothing, and Publish sets the
// message's UUID to the stored one's id (whether or not it was consumed
// since). The payload limit (pubsub.PayloadLimiter) is 1 MiB, the other
// backends' default, so that what passes in tests passes in production: a
// larger payload is refused with pubsub.ErrPayloadTooLarge, nothing of the
// publish stored.
//
// # Memory
//
// Nothing bounds a queue but the process's memory: a waiting message
// costs about 130 bytes of bookkeeping plus its payload, its id and 32
// bytes per metadata key (the strings themselves are shared with the
// published message). A message of the reliability soak's shape (a
// 40-byte payload, the two keys a router publisher adds) costs about 270
// bytes; the garbage collector's headroom makes the process's resident
// memory about twice the live heap. The messages of a batch published in
// one call share three allocations (bookkeeping, payloads up to 512 bytes,
// metadata), freed when the last of them is.
//
// # Capabilities
//
// delayed_redelivery, priority_order and dead_letters; and the instance
// registry with each broadcast queue's latest message
// (pubsub.InstanceStore), namespaces (pubsub.NamespaceDropper: mem://NAME
// opened with pubsub.WithNamespace(NS) is a storage of its own, apart from
// NAME without a namespace, and DropNamespace empties its queues, dead
// letters and instances) and the audit log (pubsub.AuditStore, kept as
// long as the storage). Not durable: everything is lost with the process.
// Not cross_process: only backends of the same process share a storage.
// No transactional publish.
package mem
