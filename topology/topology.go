package topology

import (
	"os"
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
	// Workers is the publisher concurrency.
	Workers int `yaml:"workers" json:"workers"`
	// MaxRetries is how many times a failed message is retried before it
	// becomes a dead letter.
	MaxRetries int `yaml:"max_retries" json:"max_retries"`
	// RetryDelay is the first retry's delay; JSON and YAML show it as
	// retry_delay_ms (see marshal.go).
	RetryDelay time.Duration `yaml:"-" json:"-"`
	// Priority is the default priority of the queue's messages.
	Priority Priority `yaml:"priority" json:"priority"`
	// Delivery is how the queue's messages reach the consumer's instances.
	Delivery Delivery `yaml:"delivery" json:"delivery"`
}

// Consumer is one queue a service consumes, with its handler.
type Consumer struct {
	// Key is the seed's name for the entry, e.g. "consensus_results".
	Key string `yaml:"-" json:"key"`
	// Queue is the queue name.
	Queue string `yaml:"queue_name" json:"queue_name"`
	// Handler is the name of the handler function, e.g.
	// "handle_consensus_result"; the service registers a function under it.
	Handler string `yaml:"handler" json:"handler"`
	// Workers is how many messages of the queue the service handles at once.
	Workers int `yaml:"workers" json:"workers"`
	// MaxRetries is how many times a failed message is retried before it
	// becomes a dead letter.
	MaxRetries int `yaml:"max_retries" json:"max_retries"`
	// RetryDelay is the first retry's delay; JSON and YAML show it as
	// retry_delay_ms (see marshal.go).
	RetryDelay time.Duration `yaml:"-" json:"-"`
	// Priority is the queue's priority.
	Priority Priority `yaml:"priority" json:"priority"`
	// Delivery is how the queue's messages reach this service's instances.
	Delivery Delivery `yaml:"delivery" json:"delivery"`
}

// Spec returns the pubsub declaration of the consumer's queue.
func (c Consumer) Spec() pubsub.QueueSpec {
	return pubsub.QueueSpec{Name: c.Queue, Priority: c.Priority.Backend(), MaxRetries: c.MaxRetries, RetryDelay: c.RetryDelay}
}

// Spec returns the pubsub declaration of the producer's queue.
func (p Producer) Spec() pubsub.QueueSpec {
	return pubsub.QueueSpec{Name: p.Queue, Priority: p.Priority.Backend(), MaxRetries: p.MaxRetries, RetryDelay: p.RetryDelay}
}

// ServiceConfig is one service's configuration: the seed's
// `config :singularity, :quantum_flow_queues, ...` block.
type ServiceConfig struct {
	Name        string `json:"name"`
	DatabaseURL string `json:"database_url"`
	// InstanceID names this process among the service's instances; it
	// defaults to DefaultInstanceID().
	InstanceID string     `json:"instance_id"`
	Producers  []Producer `json:"producers"`
	Consumers  []Consumer `json:"consumers"`
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
			Name:        Singularity,
			DatabaseURL: DefaultSingularityURL,
			InstanceID:  DefaultInstanceID(),
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
			Name:        CentralCloud,
			DatabaseURL: DefaultCentralCloudURL,
			InstanceID:  DefaultInstanceID(),
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
