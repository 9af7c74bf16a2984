package pubsub

import (
	"fmt"
	"strconv"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Metadata keys QuantumFlow reads or writes. Keys with this prefix are
// reserved.
const (
	// MetadataPriority holds a message's priority as a decimal integer;
	// without it the queue's priority applies.
	MetadataPriority = "quantumflow_priority"
)

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
