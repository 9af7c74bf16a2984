// Package topology describes QuantumFlow's documented topology — the six
// queues between Singularity instances and CentralCloud — and loads each
// service's configuration.
//
// # Topology
//
// Each service has producers (queues it publishes to) and consumers
// (queues it handles, each with a handler name). Default returns the
// seed's configuration of a service; Queues the six queue declarations.
// Every entry defaults to max_retries 3 and retry_delay_ms 1000;
// rollback_triggers_queue is high priority. An entry's dedup_window (a Go
// duration from 100ms to DedupWindowLimit, 24h; DefaultDedupWindow, 2m,
// when unset) is how long its queue remembers a message's dedup key
// (router.WithDedupKey): it is declared with the queue (Spec).
//
// A consumer's workers are how many of the queue's messages the service
// handles at once; a producer's workers (the seed's publisher
// concurrency) are the most publishes of the queue the service runs at
// once, which the router enforces by holding further publishes until one
// finishes.
//
// Each queue has a delivery mode (`delivery:` on its entries), which the
// producer's and the consumer's entries must agree on:
//
//   - work: competing consumers, any instance takes any message. The three
//     Singularity → CentralCloud queues.
//   - addressed: a message names the instance it is for (or all of them);
//     only that instance gets it. consensus_results_queue (a result goes
//     back to the proposer) and rollback_triggers_queue.
//   - broadcast: every instance of the consuming service gets its own
//     durable copy. guardian_safety_profiles_queue.
//
// Each process has an instance id (`instance_id`, QUANTUM_FLOW_INSTANCE_ID,
// the CLI's --instance): 1-64 letters, digits, '_', '.' or '-', and not
// "all"; by default the host name (DefaultInstanceID), which suits one
// instance per host.
//
// Two settings say how long what waits for an instance of the consuming
// service that stopped heartbeating (crashed, cut off) waits, as Go
// durations:
//
//   - instance_ttl (QUANTUM_FLOW_INSTANCE_TTL, --instance-ttl; default
//     24h): a message on an addressed queue for an instance silent longer
//     is dead-lettered with the reason "instance gone" by the producing
//     service's router, and a message addressed to all instances skips
//     it; `quantumflow instances` shows it as gone.
//   - broadcast_retention (QUANTUM_FLOW_BROADCAST_RETENTION,
//     --broadcast-retention; default 168h, 7 days): on a broadcast queue,
//     each instance heard from within it gets a copy, which waits for it;
//     copies of an instance silent longer are dead-lettered, "instance
//     gone", and it gets the queue's latest message when it comes back.
//
// The producing service's router sweeps by its own values, and the CLI
// goes by those of --service: set them alike for both services (CheckPair
// fails when they differ).
//
// # One messaging backend
//
// The seed gives each service its own database_url, where the two would
// never meet. messaging_url (QUANTUM_FLOW_MESSAGING_URL, the CLI's --url)
// names the backend the queues are on, the same for both services;
// database_url is only its fallback when no level sets messaging_url, so
// a messaging_url in the file wins over a QUANTUM_FLOW_DATABASE_URL in the
// environment. Open the backend with ServiceConfig.BackendURL. CheckPair
// takes both services' configurations and fails when the producer and the
// consumer of a queue would be on different backends or disagree on its
// delivery mode; `quantumflow config check --service all` runs it.
//
// # Where configuration comes from
//
// Load builds a service's configuration from four levels, each overriding
// the one before it field by field:
//
//  1. the seed's defaults (Default);
//  2. the YAML file (LoadOptions.Path);
//  3. the environment (the seed's variable names, below);
//  4. the command-line flags (LoadOptions.Overrides).
//
// With nothing set, Load returns exactly Default(service). An environment
// variable set to the empty string counts as unset.
//
// # The file
//
// The file mirrors the seed's config keys, one section per service; a
// file may hold one service or both, and Load checks both sections
// whichever service it loads. Entries are keyed by the seed's entry names
// and override the seed's entry of the same key field by field; a key the
// service does not have, or any unknown key anywhere, is an error naming
// the key and its line. A file holding both sections is also checked as a
// pair for delivery modes (backends depend on each process's environment:
// CheckPair). testdata/seed.yaml is the seed's own configuration written
// as YAML, and testdata/example.yaml a commented example of every key.
//
// A consumer entry names its handler with handler, or as the seed does,
// with handler (the Elixir module) and handler_method (the function): when
// handler_method is given it names the handler the service registers, and
// handler is read and set aside.
//
//	profile: medium                      # optional: small, medium or large
//	singularity:
//	  database_url: postgresql://localhost/singularity
//	  messaging_url: postgresql://db.internal/quantumflow   # both services
//	  instance_id: singularity-1
//	  instance_ttl: 24h                  # Go durations
//	  broadcast_retention: 168h
//	  producers:
//	    proposals_for_consensus: {queue_name: proposals_for_consensus_queue, workers: 2, max_retries: 3, retry_delay_ms: 1000}
//	  consumers:
//	    consensus_results: {queue_name: consensus_results_queue, workers: 2, handler_method: handle_consensus_result, delivery: addressed}
//	    rollback_triggers: {workers: 2, priority: high}
//	centralcloud:
//	  messaging_url: postgresql://db.internal/quantumflow
//	  consumers:
//	    proposals: {workers: 4}
//
// # The environment
//
// The seed's config reads one variable per entry, and reuses
// QUANTUM_FLOW_PROPOSALS_WORKERS, _METRICS_WORKERS, _PATTERNS_WORKERS and
// _ROLLBACK_WORKERS on both ends of a queue with different defaults
// (PROPOSALS: 2 for Singularity's producer, 3 for CentralCloud's
// consumer). Each service reads such a variable for its own side of the
// queue only. QUANTUM_FLOW_CONSENSUS_WORKERS and _SAFETY_WORKERS are read by
// Singularity only; _CONSENSUS_RESULTS_WORKERS and _PROFILE_WORKERS (the
// safety-profile producer, despite its name) by CentralCloud only.
// QUANTUM_FLOW_MAX_RETRIES and _RETRY_DELAY_MS, listed by the seed but
// never wired into its config, set every entry of the service.
// QUANTUM_FLOW_MESSAGING_URL, QUANTUM_FLOW_INSTANCE_ID,
// QUANTUM_FLOW_INSTANCE_TTL, QUANTUM_FLOW_BROADCAST_RETENTION and
// QUANTUM_FLOW_PROFILE are ours: the shared backend, the instance id, how
// long messages wait for a silent instance and a scaling profile.
// EnvTable returns this table:
//
//	VARIABLE                                SERVICE       SETS                                                DEFAULT
//	QUANTUM_FLOW_DATABASE_URL               singularity   database_url                                        postgresql://localhost/singularity
//	QUANTUM_FLOW_MESSAGING_URL              singularity   messaging_url                                       (database_url)
//	QUANTUM_FLOW_INSTANCE_ID                singularity   instance_id                                         (host name)
//	QUANTUM_FLOW_INSTANCE_TTL               singularity   instance_ttl                                        24h
//	QUANTUM_FLOW_BROADCAST_RETENTION        singularity   broadcast_retention                                 168h
//	QUANTUM_FLOW_PROPOSALS_WORKERS          singularity   workers of producer proposals_for_consensus_queue   2
//	QUANTUM_FLOW_METRICS_WORKERS            singularity   workers of producer metrics_to_guardian_queue       2
//	QUANTUM_FLOW_PATTERNS_WORKERS           singularity   workers of producer patterns_for_aggregator_queue   1
//	QUANTUM_FLOW_CONSENSUS_WORKERS          singularity   workers of consumer consensus_results_queue         2
//	QUANTUM_FLOW_ROLLBACK_WORKERS           singularity   workers of consumer rollback_triggers_queue         1
//	QUANTUM_FLOW_SAFETY_WORKERS             singularity   workers of consumer guardian_safety_profiles_queue  1
//	QUANTUM_FLOW_MAX_RETRIES                singularity   max_retries of every entry                          3
//	QUANTUM_FLOW_RETRY_DELAY_MS             singularity   retry_delay_ms of every entry                       1000
//	QUANTUM_FLOW_PROFILE                    singularity   profile                                             -
//	QUANTUM_FLOW_DATABASE_URL               centralcloud  database_url                                        postgresql://localhost/central_services
//	QUANTUM_FLOW_MESSAGING_URL              centralcloud  messaging_url                                       (database_url)
//	QUANTUM_FLOW_INSTANCE_ID                centralcloud  instance_id                                         (host name)
//	QUANTUM_FLOW_INSTANCE_TTL               centralcloud  instance_ttl                                        24h
//	QUANTUM_FLOW_BROADCAST_RETENTION        centralcloud  broadcast_retention                                 168h
//	QUANTUM_FLOW_CONSENSUS_RESULTS_WORKERS  centralcloud  workers of producer consensus_results_queue         2
//	QUANTUM_FLOW_ROLLBACK_WORKERS           centralcloud  workers of producer rollback_triggers_queue         1
//	QUANTUM_FLOW_PROFILE_WORKERS            centralcloud  workers of producer guardian_safety_profiles_queue  1
//	QUANTUM_FLOW_PROPOSALS_WORKERS          centralcloud  workers of consumer proposals_for_consensus_queue   3
//	QUANTUM_FLOW_METRICS_WORKERS            centralcloud  workers of consumer metrics_to_guardian_queue       2
//	QUANTUM_FLOW_PATTERNS_WORKERS           centralcloud  workers of consumer patterns_for_aggregator_queue   1
//	QUANTUM_FLOW_MAX_RETRIES                centralcloud  max_retries of every entry                          3
//	QUANTUM_FLOW_RETRY_DELAY_MS             centralcloud  retry_delay_ms of every entry                       1000
//	QUANTUM_FLOW_PROFILE                    centralcloud  profile                                             -
//
// # Scaling profiles
//
// A profile (small, medium, large) is the seed's Scaling Guidelines: the
// export lines it lists for that scale, applied through the table above,
// so it changes exactly the entries those variables reach. It can be set
// at any level — `profile:` in the file, QUANTUM_FLOW_PROFILE, the
// --profile flag — and the highest level that sets one wins. It applies
// at that level: it overrides worker counts from lower levels, and an
// explicit workers setting at its own level or above overrides it. So
// `profile: large` in a file gives proposals 5 workers unless the same
// file, the environment or a flag sets that entry's workers; and
// QUANTUM_FLOW_PROFILE=small overrides workers the file set, but not
// QUANTUM_FLOW_PROPOSALS_WORKERS. Worker counts by profile:
//
//	SERVICE       ENTRY                              QUEUE                           SEED  SMALL  MEDIUM  LARGE
//	singularity   producers.proposals_for_consensus  proposals_for_consensus_queue   2     1      3       5
//	singularity   producers.metrics_to_guardian      metrics_to_guardian_queue       2     1      2       4
//	singularity   producers.patterns_for_aggregator  patterns_for_aggregator_queue   1     1      2       3
//	singularity   consumers.consensus_results        consensus_results_queue         2     1      2       4
//	singularity   consumers.rollback_triggers        rollback_triggers_queue         1     1      1       2
//	singularity   consumers.safety_profiles          guardian_safety_profiles_queue  1     1      1       1
//	centralcloud  producers.consensus_results        consensus_results_queue         2     2      2       2
//	centralcloud  producers.rollback_triggers        rollback_triggers_queue         1     1      1       2
//	centralcloud  producers.safety_profiles          guardian_safety_profiles_queue  1     1      1       1
//	centralcloud  consumers.proposals                proposals_for_consensus_queue   3     1      3       5
//	centralcloud  consumers.metrics                  metrics_to_guardian_queue       2     1      2       4
//	centralcloud  consumers.patterns                 patterns_for_aggregator_queue   1     1      2       3
//
// # Validation
//
// Load reports every problem at once in a *ConfigError wrapping
// ErrInvalidConfig, each naming where the value came from (file:line and
// key, variable, or flag) and the value: workers that are not an integer
// from 1 to MaxWorkers (1024), max_retries outside 0..MaxRetriesLimit
// (1000), retry_delay_ms outside 0..RetryDelayLimit (one hour), a
// producer's message_ttl neither 0 nor a Go duration from MinMessageTTL
// (1s) to MessageTTLLimit (720h), dedup_window outside
// 100ms..DedupWindowLimit (24h),
// instance_ttl or broadcast_retention that is not a Go duration from
// MinInstanceWait (1ms) to InstanceTTLLimit (720h, 30 days) or
// BroadcastRetentionLimit (2160h, 90 days), an unknown entry, a queue_name that is not one of the six or not one the
// service is on that side of, duplicate queue names, an unknown priority
// or delivery mode, an invalid instance id, a database or messaging URL
// whose scheme is not one of mem, nats, postgres, postgresql, tls, unknown
// YAML keys, an unknown service or profile. URLs are shown with passwords
// and tokens redacted, and not at all when they do not parse (then no one
// can tell the password from the rest); long values are cut short.
// ValidateHandlers checks, once the service has registered its handlers,
// that every consumer's handler is among them; CheckPair checks the two
// services together.
//
// # Showing a configuration
//
// ServiceConfig marshals to JSON with retry_delay_ms in milliseconds and
// instance_ttl, broadcast_retention and a dedup_window set as Go durations
// ("24h"), and
// MarshalFile writes services back in the file format (with a comment
// saying what each side's workers count), which Load reads to the same
// configuration. Redacted returns a copy fit to print.
package topology
