package contracts

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/quantumflow/quantumflow/pubsub"
)

// ErrRegistered is returned by Register for a queue that has another
// contract already.
var ErrRegistered = errors.New("contracts: queue has another contract")

// registered is what the registry keeps of a queue's contract.
type registered struct {
	schema Schema
	check  func(queue string, payload []byte, md message.Metadata) (Schema, error)
}

var (
	regMu    sync.RWMutex
	registry = map[string]registered{}
)

// Register makes T the contract of queue (and of its instance queues,
// "QUEUE@INSTANCE"), for Check and Lookup. Registering the same contract
// again is a no-op; another contract for the queue is ErrRegistered.
func Register[T Contract](queue string) error {
	if err := pubsub.ValidateQueueName(queue); err != nil {
		return fmt.Errorf("contracts: register: %w", err)
	}
	var zero T
	s := zero.Schema()
	if s.Name == "" || s.Version < 1 {
		return fmt.Errorf("contracts: register %T for %s: Schema() must name the contract and a version from 1, got %+v", zero, queue, s)
	}
	regMu.Lock()
	defer regMu.Unlock()
	if have, ok := registry[queue]; ok {
		if have.schema == s {
			return nil
		}
		return fmt.Errorf("%w: %s has %s, not %s", ErrRegistered, queue, have.schema, s)
	}
	registry[queue] = registered{schema: s, check: func(queue string, payload []byte, md message.Metadata) (Schema, error) {
		v, err := Decode[T](queue, payload, md)
		return Schema{Name: s.Name, Version: v.PayloadVersion()}, err
	}}
	return nil
}

// MustRegister is Register that panics on error, for init functions.
func MustRegister[T Contract](queue string) {
	if err := Register[T](queue); err != nil {
		panic(err)
	}
}

// Lookup returns the schema of queue's contract (an instance queue's is
// its queue's), and whether it has one.
func Lookup(queue string) (Schema, bool) {
	base, _ := pubsub.SplitInstanceQueue(queue)
	regMu.RLock()
	defer regMu.RUnlock()
	r, ok := registry[base]
	return r.schema, ok
}

// Queues returns the queues with a contract, sorted.
func Queues() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	out := make([]string, 0, len(registry))
	for q := range registry {
		out = append(out, q)
	}
	slices.Sort(out)
	return out
}

// Check decodes and validates payload against queue's contract, as a
// typed handler would, and returns the payload's schema (its version).
// ok is false when queue has no contract: nothing is checked. A refusal
// is an *Error naming queue and the field.
func Check(queue string, payload []byte, md message.Metadata) (s Schema, ok bool, err error) {
	base, _ := pubsub.SplitInstanceQueue(queue)
	regMu.RLock()
	r, ok := registry[base]
	regMu.RUnlock()
	if !ok {
		return Schema{}, false, nil
	}
	s, err = r.check(queue, payload, md)
	return s, true, err
}
