package pubsub

import (
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Metadata keys QuantumFlow reads or writes. Keys with this prefix are
// reserved.
const (
	// MetadataPriority holds a message's priority as a decimal integer;
	// without it the queue's priority applies.
	MetadataPriority = "quantumflow_priority"
	// MetadataDeliverAt holds when a delayed or scheduled message becomes
	// deliverable (RFC 3339 with nanoseconds, UTC); without it, at once.
	MetadataDeliverAt = "quantumflow_deliver_at"
	// MetadataExpiresAt holds when a message expires (RFC 3339 with
	// nanoseconds, UTC): received after that, it becomes a dead letter
	// with the reason ReasonExpired instead of reaching a consumer.
	MetadataExpiresAt = "quantumflow_expires_at"
)

// ReasonExpired is the dead-letter error of a message received after its
// expiry (MetadataExpiresAt).
const ReasonExpired = "expired"

// SetDeliverAt makes msg deliverable at t, not before (a delayed or
// scheduled publish). A time already past delivers at once.
func SetDeliverAt(msg *message.Message, t time.Time) {
	msg.Metadata.Set(MetadataDeliverAt, t.UTC().Format(time.RFC3339Nano))
}

// DeliverAtOf returns when msg becomes deliverable, and whether it says.
// A malformed value is an error naming it.
func DeliverAtOf(msg *message.Message) (time.Time, bool, error) {
	return timeOf(msg.UUID, msg.Metadata, MetadataDeliverAt)
}

// SetExpiresAt makes msg expire at t: received later, it becomes a dead
// letter with the reason ReasonExpired.
func SetExpiresAt(msg *message.Message, t time.Time) {
	msg.Metadata.Set(MetadataExpiresAt, t.UTC().Format(time.RFC3339Nano))
}

// ExpiresAtOf returns when msg expires, and whether it does. A malformed
// value is an error naming it.
func ExpiresAtOf(msg *message.Message) (time.Time, bool, error) {
	return timeOf(msg.UUID, msg.Metadata, MetadataExpiresAt)
}

// timeOf reads a time metadata entry.
func timeOf(id string, md message.Metadata, key string) (time.Time, bool, error) {
	v := md.Get(key)
	if v == "" {
		return time.Time{}, false, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("message %s: metadata %s=%q is not an RFC 3339 time", id, key, v)
	}
	return t, true, nil
}

// checkMetadata validates the metadata entries QuantumFlow reads. An
// origin or a recipient that is not an instance id would make a message
// no reply or instance queue can be found for.
func checkMetadata(msg *message.Message) error {
	if _, _, err := PriorityOf(msg); err != nil {
		return err
	}
	for _, k := range []string{MetadataOrigin, MetadataTo} {
		v := msg.Metadata.Get(k)
		if v == "" || k == MetadataTo && v == InstanceAll {
			continue
		}
		if err := ValidateInstanceID(v); err != nil {
			return fmt.Errorf("message %s: metadata %s=%q is not an instance id (1-64 letters, digits, '_', '.' or '-')", msg.UUID, k, v)
		}
	}
	if _, _, err := DeliverAtOf(msg); err != nil {
		return err
	}
	_, _, err := ExpiresAtOf(msg)
	return err
}

// SetPriority sets msg's priority.
func SetPriority(msg *message.Message, p Priority) {
	msg.Metadata.Set(MetadataPriority, strconv.Itoa(int(p)))
}

// PriorityOf returns msg's priority and whether it has one. A malformed
// value is an error naming it.
func PriorityOf(msg *message.Message) (Priority, bool, error) {
	v := msg.Metadata.Get(MetadataPriority)
	if v == "" {
		return 0, false, nil
	}
	p, err := strconv.Atoi(v)
	if err != nil {
		return 0, false, fmt.Errorf("message %s: metadata %s=%q is not an integer", msg.UUID, MetadataPriority, v)
	}
	return Priority(p), true, nil
}
