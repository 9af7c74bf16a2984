package pubsub

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// An instance is one running service process (a Singularity instance, or
// CentralCloud). Queues whose messages are for one instance (addressed
// delivery) or for each instance (broadcast delivery) keep each instance's
// messages in a queue of their own, the instance queue "QUEUE@INSTANCE":
// every backend stores, counts, retries and dead-letters them as it does
// any queue's, so all of that works per instance and a dead letter says
// which instance it was for.

// InstanceSeparator joins a queue's name and an instance id into the
// name of the instance's queue. Queue names cannot contain it.
const InstanceSeparator = "@"

// InstanceAll is the target that addresses a message to every registered
// instance of the consuming service, as a broadcast does.
const InstanceAll = "all"

// Metadata keys of instance delivery.
const (
	// MetadataOrigin holds the id of the instance that published the
	// message; replies are addressed to it.
	MetadataOrigin = "quantumflow_origin"
	// MetadataTo holds the id of the instance a message is for.
	MetadataTo = "quantumflow_to"
)

// Reasons instance delivery dead-letters a message for.
const (
	// ReasonInstanceGone is the dead-letter error of a message for an
	// instance gone longer than the instance TTL.
	ReasonInstanceGone = "instance gone"
)

var instanceIDRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// ErrInstanceTaken is returned by RegisterInstance when another live
// process already runs under the same service and instance id.
var ErrInstanceTaken = errors.New("pubsub: instance id taken by a live process")

// ValidateInstanceID returns an error unless id is 1-64 letters, digits,
// '_', '.' or '-' and not the reserved word "all".
func ValidateInstanceID(id string) error {
	if !instanceIDRE.MatchString(id) || id == InstanceAll {
		return fmt.Errorf("%w: instance id %q: use 1-64 letters, digits, '_', '.' or '-' (and not %q)", ErrInvalidArgument, id, InstanceAll)
	}
	return nil
}

// InstanceQueue returns the name of instance's queue of queue.
func InstanceQueue(queue, instance string) string { return queue + InstanceSeparator + instance }

// SplitInstanceQueue splits an instance queue's name into the queue and
// the instance; a plain queue's name has no instance.
func SplitInstanceQueue(name string) (queue, instance string) {
	q, inst, ok := strings.Cut(name, InstanceSeparator)
	if !ok {
		return name, ""
	}
	return q, inst
}

// Instance is a service process as the instance registry knows it.
type Instance struct {
	// Service is the name of the instance's service (singularity,
	// centralcloud).
	Service string `json:"service"`
	// ID is the instance id, unique within the service (see
	// ValidateInstanceID).
	ID string `json:"id"`
	// Host is the host name of the process's machine.
	Host string `json:"host"`
	// PID is the process id on Host.
	PID int `json:"pid"`
	// Version is the service's version as the process reports it; empty
	// when it reports none.
	Version string `json:"version,omitempty"`
	// Nonce is unique per process: a record under the same service and id
	// with another nonce is another process.
	Nonce string `json:"-"`
	// StartedAt is when the process first registered; RegisterInstance
	// sets it when it is zero.
	StartedAt time.Time `json:"started_at"`
	// HeartbeatAt is the process's last heartbeat, set by each
	// RegisterInstance: State goes by it.
	HeartbeatAt time.Time `json:"heartbeat_at"`
	// Consumers are the queues the instance consumes, with their workers.
	Consumers []InstanceConsumer `json:"consumers,omitempty"`
}

// InstanceConsumer is one queue an instance consumes.
type InstanceConsumer struct {
	// Queue is the queue's name (not the instance queue's).
	Queue string `json:"queue"`
	// Workers is how many of the queue's messages the instance handles
	// at once.
	Workers int `json:"workers"`
}

// Instance states, as Instance.State names them.
const (
	InstanceLive  = "live"
	InstanceStale = "stale"
	InstanceGone  = "gone"
)

// InstanceStates lists the states an instance can be in.
func InstanceStates() []string { return []string{InstanceLive, InstanceStale, InstanceGone} }

// State says whether an instance is live (a heartbeat within stale),
// stale (none within stale) or gone (none within ttl).
// An instance that stopped cleanly (Backend.StopInstance) is stale at
// once.
func (i Instance) State(now time.Time, stale, ttl time.Duration) string {
	age := now.Sub(i.HeartbeatAt)
	switch {
	case age > ttl:
		return InstanceGone
	case age > stale || i.Nonce == stoppedNonce:
		return InstanceStale
	}
	return InstanceLive
}

// InstanceStore is the instance registry's storage, which every driver
// implements: a table on PostgreSQL, a key-value bucket on NATS, a map in
// memory.
type InstanceStore interface {
	// PutInstance records inst under (Service, ID), replacing the record
	// there, unless that record has another Nonce and a heartbeat after
	// liveAfter: then it changes nothing and returns that record with an
	// error wrapping ErrInstanceTaken.
	PutInstance(ctx context.Context, inst Instance, liveAfter time.Time) (Instance, error)
	// ListInstances returns every record, ordered by service, then id.
	ListInstances(ctx context.Context) ([]Instance, error)
	// DeleteInstance deletes the record of (service, id).
	DeleteInstance(ctx context.Context, service, id string) error
	// PutLatest keeps msg as queue's latest broadcast message, which
	// instances that join later receive.
	PutLatest(ctx context.Context, queue string, msg LatestMessage) error
	// Latest returns queue's latest broadcast message; false when none.
	Latest(ctx context.Context, queue string) (LatestMessage, bool, error)
}

// LatestMessage is a broadcast queue's latest message.
type LatestMessage struct {
	// ID is the message's id; the copies replayed to instances that join
	// later keep it.
	ID string
	// Payload is the message's payload as published.
	Payload []byte
	// Metadata is the message's metadata as published.
	Metadata map[string]string
	// PublishedAt is when the message was kept as the latest (when it was
	// broadcast).
	PublishedAt time.Time
}
