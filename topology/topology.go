package topology

import (
	"os"
	"slices"
	"time"

	"github.com/quantumflow/quantumflow/pubsub"
)

// Service names.
const (
	// Singularity is the service that runs as many instances.
	Singularity = "singularity"
	// CentralCloud is the one logical central service.
	CentralCloud = "centralcloud"
)

// Queue names, exactly as in the seed.
const (
	ProposalsQueue      = "proposals_for_consensus_queue"
	MetricsQueue        = "metrics_to_guardian_queue"
	PatternsQueue       = "patterns_for_aggregator_queue"
	ConsensusQueue      = "consensus_results_queue"
	RollbackQueue       = "rollback_triggers_queue"
	SafetyProfilesQueue = "guardian_safety_profiles_queue"
)

// Handler names, the seed's handler_method values.
const (
	HandleProposalForConsensus = "handle_proposal_for_consensus"
	HandleExecutionMetrics     = "handle_execution_metrics"
	HandlePatternDiscovered    = "handle_pattern_discovered"
	HandleConsensusResult      = "handle_consensus_result"
	HandleRollbackTrigger      = "handle_rollback_trigger"
	HandleSafetyProfileUpdate  = "handle_safety_profile_update"
)

// Defaults shared by every queue in the seed.
const (
	DefaultMaxRetries = 3
	DefaultRetryDelay = 1000 * time.Millisecond
)

// Upper bounds of what a configuration may set, refused at validation
// from every level (file, environment, flags) by name and limit, so that
// a stray digit is a configuration error rather than a process that runs
// out of memory or a value a backend's column cannot hold.
const (
	// MaxWorkers bounds every workers count, producer or consumer: each
	// consumer worker is a goroutine with a message in hand, and 1024 per
	// queue is far past what one process's backend connections serve.
	MaxWorkers = 1024
	// MaxRetriesLimit bounds max_retries. With the retry policy's default
	// cap of 5 minutes a delay, 1000 retries keep a message for about three
	// and a half days.
	MaxRetriesLimit = 1000
	// RetryDelayLimit bounds retry_delay_ms, the first retry's delay (the
	// retry policy caps every delay at 5 minutes by default anyway).
	RetryDelayLimit = time.Hour
	// InstanceTTLLimit bounds instance_ttl: a reply or rollback for an
	// instance silent for a month is better read in the dead letters.
	InstanceTTLLimit = 30 * 24 * time.Hour
	// BroadcastRetentionLimit bounds broadcast_retention: 90 days of
	// copies for an instance that may never come back is storage the
	// backend keeps for nothing.
	BroadcastRetentionLimit = 90 * 24 * time.Hour
	// MinInstanceWait is the least instance_ttl and broadcast_retention
	// may be: a shorter wait is a unit left out ("1" for "1h"). A router
	// also refuses either shorter than its stale timeout (three
	// heartbeats), after which its own instance would count as gone.
	MinInstanceWait = time.Millisecond
	// MinMessageTTL and MessageTTLLimit bound a producer's message_ttl
	// (0, or absent, is no expiry): shorter than a second expires messages
	// in transit, longer than 30 days is better purged by hand.
	MinMessageTTL   = time.Second
	MessageTTLLimit = 30 * 24 * time.Hour
	// DedupWindowLimit bounds dedup_window (pubsub.MaxDedupWindow): a
	// backend remembers every key of a window (NATS in the server's
	// memory), so a window of days is memory a stray digit would cost.
	DedupWindowLimit = pubsub.MaxDedupWindow
)

// DefaultDedupWindow is the dedup_window of an entry that sets none (its
// DedupWindow is zero): how long a queue remembers a message's dedup key
// (router.WithDedupKey).
const DefaultDedupWindow = pubsub.DefaultDedupWindow

// How long what waits for an instance that stopped heartbeating waits,
// by default: instance_ttl and broadcast_retention.
const (
	// DefaultInstanceTTL is instance_ttl's default: a message addressed to
	// an instance without a heartbeat for a day is dead-lettered.
	DefaultInstanceTTL = 24 * time.Hour
	// DefaultBroadcastRetention is broadcast_retention's default: an
	// instance's copies of broadcast messages wait for it a week.
	DefaultBroadcastRetention = 7 * 24 * time.Hour
)

// Priority of a queue: "normal" or "high".
type Priority string

// Queue priorities.
const (
	PriorityNormal Priority = "normal"
	PriorityHigh   Priority = "high"
)

// Backend returns the pubsub priority messages of a queue with this
// priority get by default.
func (p Priority) Backend() pubsub.Priority {
	if p == PriorityHigh {
		return pubsub.PriorityHigh
	}
	return pubsub.PriorityNormal
}

// Delivery is how a queue's messages reach the consuming service's
// instances.
type Delivery string

// Delivery modes.
const (
	// DeliveryWork: competing consumers; any instance takes any message.
	DeliveryWork Delivery = "work"
	// DeliveryAddressed: each message names the instance it is for (or
	// all of them); only that instance receives it.
	DeliveryAddressed Delivery = "addressed"
	// DeliveryBroadcast: every instance of the consuming service gets its
	// own durable copy; instances that join later get the latest message.
	DeliveryBroadcast Delivery = "broadcast"
)

// Deliveries returns the delivery modes, in the order they are listed in
// errors and documentation.
func Deliveries() []Delivery { return []Delivery{DeliveryWork, DeliveryAddressed, DeliveryBroadcast} }

// DefaultDelivery is the seed's delivery mode of a queue of the topology:
// CentralCloud's answers are for one instance (the consensus result for
// the proposer, a rollback for the instance it names), its safety
// profiles for all; the rest are work queues.
func DefaultDelivery(queue string) Delivery {
	switch queue {
	case ConsensusQueue, RollbackQueue:
		return DeliveryAddressed
	case SafetyProfilesQueue:
		return DeliveryBroadcast
	}
	return DeliveryWork
}

// Producer is one queue a service publishes to.
type Producer struct {
	// Key is the seed's name for the entry, e.g. "proposals_for_consensus".
	Key string `yaml:"-" json:"key"`
	// Queue is the queue name, e.g. "proposals_for_consensus_queue".
	Queue string `yaml:"queue_name" json:"queue_name"`
	// Workers is the seed's publisher concurrency: the most publishes of
	// the queue the service runs at once. The router holds further
	// publishes of the queue until one finishes, so a burst of publishers
	// cannot open more than Workers calls on the backend. At most
	// MaxWorkers.
	Workers int `yaml:"workers" json:"workers"`
	// MaxRetries is how many times a failed message is retried before it
	// becomes a dead letter. At most MaxRetriesLimit.
	MaxRetries int `yaml:"max_retries" json:"max_retries"`
	// RetryDelay is the first retry's delay, at most RetryDelayLimit; JSON
	// and YAML show it as retry_delay_ms (see marshal.go).
	RetryDelay time.Duration `yaml:"-" json:"-"`
	// Priority is the default priority of the queue's messages.
	Priority Priority `yaml:"priority" json:"priority"`
	// Delivery is how the queue's messages reach the consumer's instances.
	Delivery Delivery `yaml:"delivery" json:"delivery"`
	// MessageTTL is message_ttl: how long after its publish a message of
	// the queue expires (a dead letter with the reason "expired" if no
	// consumer took it by then), unless the publish sets its own
	// (router.WithTTL). Zero: messages do not expire. A Go duration in the
	// file ("10m"), from MinMessageTTL to MessageTTLLimit.
	MessageTTL time.Duration `yaml:"-" json:"-"`
	// DedupWindow is dedup_window: how long the queue remembers a dedup
	// key, from pubsub.MinDedupWindow to DedupWindowLimit; zero means
	// DefaultDedupWindow. JSON and YAML show it as a Go duration ("2m").
	DedupWindow time.Duration `yaml:"-" json:"-"`
}

// Consumer is one queue a service consumes, with its handler.
type Consumer struct {
	// Key is the seed's name for the entry, e.g. "consensus_results".
	Key string `yaml:"-" json:"key"`
	// Queue is the queue name.
	Queue string `yaml:"queue_name" json:"queue_name"`
	// Handler is the name of the handler function, e.g.
	// "handle_consensus_result"; the service registers a function under it.
	// In the file it is handler_method (the seed's key, with handler then
	// naming the seed's Elixir module, which a Go service has no use for),
	// or handler alone.
	Handler string `yaml:"handler" json:"handler"`
	// Workers is how many messages of the queue the service handles at
	// once. At most MaxWorkers.
	Workers int `yaml:"workers" json:"workers"`
	// MaxRetries is how many times a failed message is retried before it
	// becomes a dead letter. At most MaxRetriesLimit.
	MaxRetries int `yaml:"max_retries" json:"max_retries"`
	// RetryDelay is the first retry's delay, at most RetryDelayLimit; JSON
	// and YAML show it as retry_delay_ms (see marshal.go).
	RetryDelay time.Duration `yaml:"-" json:"-"`
	// Priority is the queue's priority.
	Priority Priority `yaml:"priority" json:"priority"`
	// Delivery is how the queue's messages reach this service's instances.
	Delivery Delivery `yaml:"delivery" json:"delivery"`
	// DedupWindow is dedup_window, as for a Producer.
	DedupWindow time.Duration `yaml:"-" json:"-"`
}

// Spec returns the pubsub declaration of the consumer's queue.
func (c Consumer) Spec() pubsub.QueueSpec {
	return pubsub.QueueSpec{Name: c.Queue, Priority: c.Priority.Backend(), MaxRetries: c.MaxRetries, RetryDelay: c.RetryDelay, DedupWindow: c.DedupWindow}
}

// Spec returns the pubsub declaration of the producer's queue.
func (p Producer) Spec() pubsub.QueueSpec {
	return pubsub.QueueSpec{Name: p.Queue, Priority: p.Priority.Backend(), MaxRetries: p.MaxRetries, RetryDelay: p.RetryDelay, DedupWindow: p.DedupWindow}
}

// ServiceConfig is one service's configuration: the seed's
// `config :singularity, :quantum_flow_queues, ...` block.
type ServiceConfig struct {
	// Name is the service: Singularity or CentralCloud.
	Name string `json:"name"`
	// DatabaseURL is the seed's database_url. It is where the service's
	// queues are unless MessagingURL is set; open the backend with
	// BackendURL, not with this.
	DatabaseURL string `json:"database_url"`
	// MessagingURL is messaging_url: the one backend both services'
	// queues are on, which overrides DatabaseURL for messaging at whatever
	// level either is set. "" means DatabaseURL. The seed gives the two
	// services different databases, where they would never meet; setting
	// this alike for both is how they share one backend (see CheckPair).
	MessagingURL string `json:"messaging_url,omitempty"`
	// InstanceID names this process among the service's instances: 1-64
	// letters, digits, '_', '.' or '-' (pubsub.ValidateInstanceID).
	// Defaults to DefaultInstanceID().
	InstanceID string `json:"instance_id"`
	// InstanceTTL is instance_ttl: how long an instance of the consuming
	// service may go without a heartbeat before the messages addressed to
	// it are dead-lettered ("instance gone") by this service's router, and
	// before a message addressed to all instances skips it. It also says
	// when `quantumflow instances` shows an instance as gone. From
	// MinInstanceWait to InstanceTTLLimit; Default sets DefaultInstanceTTL,
	// and zero (a ServiceConfig built by hand) means it. JSON and YAML show
	// it as a Go duration ("24h").
	InstanceTTL time.Duration `json:"-"`
	// BroadcastRetention is broadcast_retention: how long an instance's
	// copies of broadcast messages wait for it without a heartbeat. A
	// broadcast goes to every instance heard from within it, and the
	// router dead-letters ("instance gone") the copies of instances silent
	// longer. It may be longer or shorter than InstanceTTL: an instance
	// back after it gets the queue's latest message instead. From
	// MinInstanceWait to BroadcastRetentionLimit; Default sets
	// DefaultBroadcastRetention, and zero means it.
	BroadcastRetention time.Duration `json:"-"`
	Producers          []Producer    `json:"producers"`
	Consumers          []Consumer    `json:"consumers"`
}

// BackendURL is the URL the service opens its messaging backend with:
// MessagingURL, else DatabaseURL.
func (s *ServiceConfig) BackendURL() string {
	if s.MessagingURL != "" {
		return s.MessagingURL
	}
	return s.DatabaseURL
}

// Redacted returns a copy of the configuration fit to print: passwords
// and tokens in its URLs replaced by "xxxxx" (pubsub.RedactURL).
func (s ServiceConfig) Redacted() ServiceConfig {
	s.DatabaseURL = pubsub.RedactURL(s.DatabaseURL)
	if s.MessagingURL != "" {
		s.MessagingURL = pubsub.RedactURL(s.MessagingURL)
	}
	s.Producers = slices.Clone(s.Producers)
	s.Consumers = slices.Clone(s.Consumers)
	return s
}

// Producer returns the producer entry for a queue name.
func (s *ServiceConfig) Producer(queue string) (Producer, bool) {
	for _, p := range s.Producers {
		if p.Queue == queue {
			return p, true
		}
	}
	return Producer{}, false
}

// Consumer returns the consumer entry for a queue name.
func (s *ServiceConfig) Consumer(queue string) (Consumer, bool) {
	for _, c := range s.Consumers {
		if c.Queue == queue {
			return c, true
		}
	}
	return Consumer{}, false
}

// Default database URLs from the seed.
const (
	DefaultSingularityURL  = "postgresql://localhost/singularity"
	DefaultCentralCloudURL = "postgresql://localhost/central_services"
)

// Default returns the seed's configuration of a service, or false for an
// unknown service name.
func Default(service string) (ServiceConfig, bool) {
	switch service {
	case Singularity:
		return ServiceConfig{
			Name:               Singularity,
			DatabaseURL:        DefaultSingularityURL,
			InstanceID:         DefaultInstanceID(),
			InstanceTTL:        DefaultInstanceTTL,
			BroadcastRetention: DefaultBroadcastRetention,
			Producers: []Producer{
				producer("proposals_for_consensus", ProposalsQueue, 2, PriorityNormal),
				producer("metrics_to_guardian", MetricsQueue, 2, PriorityNormal),
				producer("patterns_for_aggregator", PatternsQueue, 1, PriorityNormal),
			},
			Consumers: []Consumer{
				consumer("consensus_results", ConsensusQueue, HandleConsensusResult, 2, PriorityNormal),
				consumer("rollback_triggers", RollbackQueue, HandleRollbackTrigger, 1, PriorityHigh),
				consumer("safety_profiles", SafetyProfilesQueue, HandleSafetyProfileUpdate, 1, PriorityNormal),
			},
		}, true
	case CentralCloud:
		return ServiceConfig{
			Name:               CentralCloud,
			DatabaseURL:        DefaultCentralCloudURL,
			InstanceID:         DefaultInstanceID(),
			InstanceTTL:        DefaultInstanceTTL,
			BroadcastRetention: DefaultBroadcastRetention,
			Producers: []Producer{
				producer("consensus_results", ConsensusQueue, 2, PriorityNormal),
				producer("rollback_triggers", RollbackQueue, 1, PriorityHigh),
				producer("safety_profiles", SafetyProfilesQueue, 1, PriorityNormal),
			},
			Consumers: []Consumer{
				consumer("proposals", ProposalsQueue, HandleProposalForConsensus, 3, PriorityNormal),
				consumer("metrics", MetricsQueue, HandleExecutionMetrics, 2, PriorityNormal),
				consumer("patterns", PatternsQueue, HandlePatternDiscovered, 1, PriorityNormal),
			},
		}, true
	}
	return ServiceConfig{}, false
}

// Services returns the names of the topology's services.
func Services() []string { return []string{Singularity, CentralCloud} }

// Queues returns the six queue specs of the topology, with the seed's
// priorities and retry settings.
func Queues() []pubsub.QueueSpec {
	var out []pubsub.QueueSpec
	for _, s := range Services() {
		cfg, _ := Default(s)
		for _, c := range cfg.Consumers {
			out = append(out, c.Spec())
		}
	}
	return out
}

func producer(key, queue string, workers int, p Priority) Producer {
	return Producer{Key: key, Queue: queue, Workers: workers, MaxRetries: DefaultMaxRetries, RetryDelay: DefaultRetryDelay, Priority: p, Delivery: DefaultDelivery(queue)}
}

func consumer(key, queue, handler string, workers int, p Priority) Consumer {
	return Consumer{Key: key, Queue: queue, Handler: handler, Workers: workers, MaxRetries: DefaultMaxRetries, RetryDelay: DefaultRetryDelay, Priority: p, Delivery: DefaultDelivery(queue)}
}

// DefaultInstanceID is the instance id of a process that sets none: the
// host name, with characters an instance id cannot hold replaced by '-'
// (one instance per host).
func DefaultInstanceID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		return "instance"
	}
	id := []byte(host)
	for i, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			id[i] = '-'
		}
	}
	if len(id) > 64 {
		id = id[:64]
	}
	return string(id)
}
