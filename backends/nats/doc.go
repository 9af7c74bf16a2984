// Package nats is QuantumFlow's NATS JetStream backend. Import it for its
// side effect and open it by URL:
//
//	import _ "github.com/quantumflow/quantumflow/backends/nats"
//
//	backend, err := pubsub.Open(ctx, "nats://127.0.0.1:4222")
//
// Package embedded (backends/nats/embedded) runs a NATS server inside the
// process; `quantumflow demo` uses it, so nothing needs installing.
//
// It is a pubsub.Driver: the engine of package pubsub implements
// Watermill's Publisher and Subscriber over it (validation, the buffer of
// messages received ahead, delivery contexts, settlement batching, lease
// extension). This package is the JetStream side, on nats.go's jetstream
// API, not on watermill-nats (whose JetStream subscriber is beta, holds
// one message per Subscribe and does not carry delays, attempts or dead
// letters).
//
// # URLs
//
//	nats://[user:password@ | token@]host:port[?param=value&...]
//	tls://...   the same, TLS required
//
// The parameters, all optional (an unknown one fails Open with an error
// wrapping pubsub.ErrInvalidURL; passwords and tokens never appear in
// errors or logs):
//
//	creds=FILE            NATS credentials file (user JWT and nkey seed)
//	nkey=FILE             nkey seed file
//	tls_ca=FILE           CA certificates that sign the server's certificate
//	tls_cert=FILE         client certificate, with tls_key=FILE, for mutual TLS
//	servers=URL,URL       more servers of the same cluster to try (the client
//	                      also learns the cluster's servers from the first one)
//	name=NAME             connection name shown by the server (quantumflow)
//	replicas=N            stream replicas, 1 to 5 (1; use 3 in a cluster)
//	storage=file|memory   stream storage (file; memory is not durable)
//	consumer_storage=file|memory  where the servers keep each queue's
//	                      consumer state (file); memory spares the disk a
//	                      write per consumer after deliveries and acks, but
//	                      a restart of every server holding a consumer
//	                      deletes it: see Durability
//	max_msgs=N            limit of messages per queue (-1: none); a full queue
//	max_bytes=N           or one over max_bytes refuses publishes (Publish
//	max_age=DURATION      fails) instead of dropping old messages; max_age
//	                      does drop messages older than it (0: never)
//	ack_wait=DURATION     the lease of a delivered message (30s), see below
//	max_ack_pending=N     cap on messages delivered and not acked, retry
//	                      waits included (-1: none)
//	prefetch=N            most messages one receive takes (1024; 1: no
//	                      receiving ahead), see pubsub.Tuning
//	dedup_window=DURATION how long a dedup key is remembered (2m), for
//	                      queues used without a declaration, and a
//	                      dead letter's id in the dead-letter stream; a
//	                      declared queue has its own (QueueSpec.DedupWindow,
//	                      the topology's dedup_window)
//	publish_timeout=DURATION  how long Publish, Open, Init, DeclareQueue and
//	                      the others named under Delivery semantics keep
//	                      retrying transient failures (30s)
//	prefix=NAME           prefix of stream and subject names (QF), to share a
//	                      NATS account between applications or tests
//
// A backend opened with pubsub.WithNamespace(NS) keeps everything under
// the prefix <prefix>-NS, NS's '_' written '-' (namespace qfdemo_1a2b:
// streams QF-qfdemo-1a2b_<queue>, QF-qfdemo-1a2b-DLQ, QF-qfdemo-1a2b-STATE
// and QF-qfdemo-1a2b-AUDIT, subjects QF-qfdemo-1a2b.q.<queue> and so on,
// bucket QF-qfdemo-1a2b-REGISTRY), apart from the queues without a
// namespace and from every other namespace's; DropNamespace deletes those
// streams and the bucket, and nothing else.
//
// Stream and consumer settings apply when this backend creates them (on
// the first publish, subscribe or DeclareQueue of a queue); DeclareQueue
// also updates the queue's declaration and the consumer's ack_wait and
// max_ack_pending. Change anything else with the nats CLI (`nats stream
// edit QF_<queue>`).
//
// # Layout
//
// Each queue is a stream QF_<queue> with the single subject QF.q.<queue>
// (a '.' in a queue name becomes '=' in stream names and subjects), with
// WorkQueue retention: a message leaves the stream when it is acked, so
// the stream holds exactly the queue's unfinished messages. One stream per
// queue, rather than one stream with a subject per queue, gives each queue
// its own limits, its own Raft group in a cluster (queues do not queue
// behind each other's replication), its own counts straight from stream
// and consumer info, and a queue that can be inspected, purged or deleted
// on its own.
//
// Every queue stream has one durable pull consumer, "workers", shared by
// all subscriptions of all processes: each message goes to one of them.
// A queue used without a declaration gets pubsub.DefaultQueueSpec; a
// declared one is stored as given, in its stream's metadata
// (max_retries 0 is "never retry").
// Dead letters live in the stream QF-DLQ (subjects QF.dlq.<queue>, limits
// retention: kept until retried or purged). QF-STATE keeps, per message
// that failed or was given back, what JetStream does not: its first and
// last failure time, last error, retry time and the deliveries that did
// not count. Messages that are neither never touch it. The key-value
// bucket QF-REGISTRY holds the instance registry (pubsub.InstanceStore),
// the latest message of each broadcast queue and the paused queues
// (pubsub.QueuePauser: keys "p.<queue>", watched by every process). The
// stream QF-AUDIT (subject QF.audit, limits retention) is the audit log
// (pubsub.AuditStore): every retry, purge and other mutation, with who
// made it, kept until an operator limits the stream. A
// message published delayed or scheduled is stored at once with a
// delivery state in QF-STATE that says when it is due (Stats counts it as
// scheduled); a consumer that receives it early gives it back with a nak
// delayed until then, not counted as an attempt (see scheduleDelayed for
// why not the server's message schedules). GetMessage and DeleteMessage
// (pubsub.MessageStore) read a queue's stream message by message.
//
// # Delivery semantics
//
// Publish returns nil only once JetStream has acknowledged every message
// (stored it, on a quorum of replicas). It honours the context of the
// first message: one already done stores nothing, and one that ends stops
// the retries. Messages carry their Watermill id as Nats-Msg-Id, so a
// Publish retried after a timeout or reconnect (it retries transient
// failures itself, within publish_timeout) never stores a message twice:
// the queue's stream remembers ids for publish_timeout plus one try's 5s
// (35s by default), or for the queue's dedup window once a message with a
// dedup key was published to it (see Deduplication). Publishing several messages in one call sends them
// as JetStream fast batches (nats-server 2.14 and later: queue streams
// are created with allow_batched, and DeclareQueue turns it on for a
// stream created without it): all messages go out before any answer is
// awaited, and the server answers once per batch of up to 500, once it
// has stored every message of it, instead of once per message.
// Nats-Msg-Id deduplication works within batches as without them, and
// costs the server: raw jetstream PublishAsync of 100 messages per call
// ran at 0.61-0.66 times its rate without ids in the last nine full
// bench runs, and this backend at 0.94-1.12 times raw with ids, so
// 0.62-0.70 times raw without them (bench/RESULTS.md, issue 4). When
// the server stores only part of a batch (a full queue refuses a message)
// the rest goes through nats.go's PublishMsgAsync, which says why; on a
// server or stream without fast batches every message goes that way.
// Concurrent publishes of one message each to the same queue are merged
// (coalesce.go): the one that finds the queue idle sends its message at
// once, with a synchronous publish, and those that arrive meanwhile go
// out together as one fast batch, sent by the first of them once the one
// before is answered (64 such publishers: 0.77-1.02 times raw jetstream
// without message ids in the last ten full runs, 0.62 before;
// bench/RESULTS.md). Keyed and delayed
// messages are not merged: they need each message's ack. Metadata
// travels as one JSON header.
//
// # Deduplication and payload limit
//
// A message with a dedup key (pubsub.MetadataDedupKey, router.WithDedupKey)
// is published with Nats-Msg-Id "qf-key:<key>" (its id travels as Qf-Id,
// and the key only there: a delivery puts it back into the metadata),
// and every queue has a stream of its own whose duplicate window is the
// queue's dedup window: JetStream drops a second message with the key
// within the window. Until the first keyed message, the window is only as
// long as a publish's retries need (see idWindow): the server keeps every
// message's id for the whole window, and at 16k messages a second a
// 2-minute window held 2M ids and raised the steady p99 from 7.5 to 19.8
// ms as it filled. The first keyed publish to a queue sets its stream's
// window and marks the stream keyed, for every process; declaring the
// queue again keeps it. Such publishes take the per-message path (the answer
// to a fast batch does not say which messages were duplicates: nats-server
// 2.15.2 skips a duplicate in a fast batch and still counts it). Atomic
// batches do refuse a batch holding a duplicate, which would tell, but
// they are slow: 100-message atomic batches from 4 publishers stored
// 15-20k msg/s against 66-71k through PublishMsgAsync on the same embedded
// server, and single-message ones 250 msg/s against 27-29k. The
// duplicate's ack names the stored message's stream sequence; Publish sets
// the duplicate's UUID to the stored message's id, which it knows when
// this backend stored the key (it remembers the last 16,384 keys it
// stored per queue within the window, checked against that sequence) or
// reads from the stream while the message is still there. Once the stored
// message was consumed (a work queue's stream drops acked messages),
// another process publishing the key, or this one after 16,384 more keys,
// gets "" as the id: the message is not stored again, but its id is no
// longer known. The window counts from the publish that stored the
// key; JetStream forgets keys on a timer, up to about 50ms after the
// window ends.
//
// The payload limit (pubsub.PayloadLimiter) is the server's max_payload
// (1 MiB by default; the server's configuration, up to 64 MiB) less 8 KiB
// kept for the headers: a larger payload is refused before anything is
// sent, with pubsub.ErrPayloadTooLarge naming the queue, the message, its
// size and the limit. A message whose payload fits but whose metadata
// takes it over max_payload is refused the same way.
//
// Fast batches are spoken by hand (a reply subject per message naming the
// batch; batchpublish.go) because nats.go v1.55.0 has no API for them,
// and because PublishMsgAsync is slower by more than the 10% this project
// allows a library path to lose where the machine is busy, as in the bench
// harness: PublishMsgAsync costs the process 19% more CPU per message
// (perf_test, 4 publishers of 100 messages, six interleaved runs on a quiet
// 2-core machine: 19.4 against 16.3 µs; 11% more with 16 publishers), and
// the harness, CPU-bound with the server in the same process, measured
// fast batches at 1.22 times raw PublishMsgAsync with message ids
// (bench/RESULTS.md, 164.5k against 135.0k msg/s). Where the CPU is not
// the limit the two are close (perf_test throughput: the library path
// 0.94 times fast batches with 4 publishers, 1.00 with 16).
//
// The engine receives a queue's messages for all the backend's
// subscriptions of it (see pubsub.Tuning: one message while they consume
// slowly, up to prefetch while they empty each batch fast, and what waits
// more than 200ms goes back) through ReceiveBatch: a no-wait pull request
// for what the queue holds now and, when it holds nothing, a pull request
// for one message that waits on the server (Consumer.Messages, drained
// when the engine cancels it: see await in receive.go for why not Fetch).
// The no-wait request is Consumer.FetchNoWait's, sent by the backend
// itself (takenow.go): FetchNoWait unsubscribes when a second passes
// without a reply, and the messages the server sends after that are lost
// until ack_wait; on a loaded machine its replies took that long.
//
// One receive of a queue runs at a time: JetStream shares its messages
// out among the pull requests waiting, one each in turn, so two at once
// would receive interleaved messages and the engine, handing results out
// in call order, would deliver out of order.
//
// nats.go's pull path costs little against the hand-written pull requests
// it replaced: behind the same engine, 0.91 times their consume rate and
// 5% more CPU per message (perf_test Consume4, five interleaved runs on a
// quiet machine), within the 10% this project allows a library path.
// The no-wait request sent by the backend itself costs nothing against
// FetchNoWait: 0.95 to 1.16 times its consume rate (bench consume, nats,
// four cases in two interleaved pairs, 2026-12-07).
//
// A message the engine gives back (received ahead and not taken in time,
// when an admin read of its queue comes through this backend, or when
// the backend's last subscription of the queue ends) goes back with a
// NAK, ready again at once, its delivery undone: JetStream counts every
// delivery and cannot take one back, so the delivery is first recorded as
// uncounted in QF-STATE, and the attempt of a later delivery is
// JetStream's count (Metadata().NumDelivered) less the uncounted ones.
// One message of QF-STATE records a whole give-back (a message that
// failed before keeps its own state instead), and the backend keeps the
// record in memory as well: a message given back usually comes back to
// the same backend, which then needs no read and writes nothing, and the
// record goes once its messages are settled there. So a give-back costs
// one state write, and one removal. A backend that takes a message given
// back by another reads that backend's records of the queue (a request,
// and one more a record it has not read before); records whose messages
// were all settled elsewhere are removed by the next backend to give
// back messages of the queue, at most every 30 s. Until its first lease
// extension (a third of ack_wait), a message taken back from a record is
// counted waiting by Stats and ListPending in other processes (in this
// one, in flight).
//
// The last NAK of a give-back waits for the server's answer, so the
// messages are back in the consumer's redelivery queue before the next
// receive or admin read. JetStream redelivers in the order of the NAKs,
// and puts a redelivery it could not hand to a pull request (one whose
// client is gone) at the back: messages given back can come again out of
// their order. The engine holds a message back until the given-back
// messages before it came (up to 2 s each), or a first delivery (they come
// only when no redelivery waits) showed that they went to another process
// (pubsub.Received.OutOfOrder); stream order holds otherwise.
//
// Delivery is at least once: a message comes back if its consumer dies,
// after ack_wait. While the engine holds a message (buffered or with a
// handler) it extends the lease every ack_wait/3 (a progress ack,
// Msg.InProgress), so a slow handler does not lose its message to another
// worker; only a consumer that stopped working does. JetStream does not
// answer progress acks, so a lease already lost is not noticed.
//
// Ack removes the message (an asynchronous ack; Close flushes them). Nack
// with Outcome().Retry records the failure in QF-STATE (first failure
// time kept, last error), then naks with that delay (Msg.NakWithDelay):
// the message is redelivered with its attempt count, and the other
// messages of the queue are not held up. A delivery marked dead-lettered
// is copied to QF-DLQ with its payload, metadata, error, attempts,
// handler, service, failure times and queue, and only once JetStream has
// stored the copy is the message acked in its queue (synchronously): a
// failure between the two leaves it in both places, never in neither, and
// the repeated copy is dropped by its Nats-Msg-Id. If the copy cannot be
// stored the message gets a NAK with a one-second delay and stays in its
// queue. Retrying a dead letter publishes it to its queue as a new
// message (attempts reset, same id) and then deletes it from QF-DLQ.
//
// A message a subscription held unsettled when it ended goes back with a
// NAK at once, its attempt counted and no failure recorded.
//
// Transient conditions (no responders while a server restarts, a leader
// election, a cluster placing a stream before its peers are up, timeouts)
// are retried with pubsub.Backoff within publish_timeout by Open, Init,
// DeclareQueue, DropNamespace, Publish, the instance registry and the
// admin reads (Stats, ListPending, the dead-letter listing), and then
// fail with pubsub.ErrUnavailable. Delivery states and a dead
// letter's ack are retried the same way within the 10s a settlement
// has. A stream or consumer without a leader (a node died) answers
// nothing, so each request of a try waits a bounded time (5s; 1s for a
// registry key, a delivery state or an ack), and work goes on within
// moments of the new leader's election instead of after the whole
// budget. A receive whose pull request went silent (missed heartbeats)
// returns at once, and the next one pulls from the new leader. A
// missing queue is pubsub.ErrQueueNotFound, a closed connection
// pubsub.ErrClosed.
//
// # Capabilities
//
// durable (with storage=file), delayed_redelivery, dead_letters and
// cross_process; namespaces (pubsub.NamespaceDropper) and the instance
// registry (pubsub.InstanceStore). Not priority_order: JetStream delivers a stream in
// arrival order and has no per-message priority. The quantumflow_priority
// metadata is kept and shown in listings but does not reorder delivery.
// High-priority queues (rollback_triggers_queue) are honoured by
// construction instead: each queue is its own stream, consumer and set of
// workers (the router runs every queue's workers separately), so no
// backlog on another queue delays them.
//
// # Durability
//
// With storage=file an acknowledged message is in the server's files, in
// the operating system's page cache: it survives a crash or SIGKILL of the
// server process. JetStream fsyncs every two minutes by default, so a
// crash of the machine itself (power loss, kernel panic) can lose up to two
// minutes of acknowledged messages on a single server. Running the server
// with sync_interval: always (embedded.Options.SyncAlways) fsyncs every
// write instead, at roughly a tenth of the publish throughput on the
// development machine; with replicas=3 on three machines, an acknowledged
// message is on two of them and a single machine failure loses nothing
// either way. storage=memory loses everything with the server.
//
// consumer_storage=memory keeps each queue's consumer state (what it
// delivered, how often, what waits for an ack) in the servers' memory
// instead of a file rewritten after deliveries and acks, one file per
// consumer: with hundreds of instances, each with queues of its own, those
// rewrites were most of the server's work (docs/scaling.md has the
// figures). Messages stay in the stream's files either way. A restart of
// every server holding a consumer (the one server, or every node of a
// cluster) deletes it; the backend creates it again, and the messages then
// in the queue are delivered at once, as after an operator deleted the
// consumer. Nothing is lost. A message that failed before keeps its
// attempts (they are in its delivery state); the delivery of one that was
// in a worker's hands is not counted. A queue's consumer keeps the storage
// it was created with: to change it, delete the consumer.
//
// # Stats and listings
//
// Stats come from stream and consumer info. Pending: messages never
// delivered (the stream's messages less the consumer's ack-pending ones;
// the consumer's NumPending lags a publish by a moment) plus nacked ones
// deliverable again and not yet taken. Scheduled: nacked messages waiting for their retry
// time. InFlight: the consumer's ack-pending messages that are neither:
// held by workers, received ahead by another process, or delivered to a
// consumer that died, until ack_wait runs out. DeadLetters: QF-DLQ's
// messages of the queue. OldestPendingAge: the oldest message among the
// pending ones. Counters: stream_messages, stream_bytes, published (the
// stream's last sequence), ack_pending, delivered (deliveries, retries
// included), redelivered (messages delivered more than once and not yet
// acked), ack_floor, waiting_pulls.
//
// ListPending reads messages from the stream without consuming them, in
// the order JetStream will deliver them: nacked messages due again, then
// messages never delivered, then messages waiting for a delayed retry
// (with AvailableAt). Messages held by workers are not listed.
// ListDeadLetters reads QF-DLQ with an ordered consumer, newest first.
//
// # Running against a NATS cluster
//
// One NATS server holds a few tens of thousands of messages per second and
// is a single point of failure. Beyond one machine (the seed's "Large
// Scale", 20+ Singularity instances), run a three-node JetStream cluster
// and open every service with replicas=3 and the cluster's servers:
//
//	nats://nats-1:4222?servers=nats://nats-2:4222,nats://nats-3:4222&replicas=3&creds=/etc/quantumflow/app.creds
//
// Every instance of a service subscribes to the same durable consumers, so
// adding instances adds workers to the same queues; each queue's stream
// and consumer are led by one node and replicated to two, different queues
// spread their leaders over the nodes. When a node dies, its leaderships
// move to the others within seconds; publishers retry (deduplicated) and
// consumers re-pull on their own. See README.md in this directory for a
// cluster configuration and operating notes.
package nats
