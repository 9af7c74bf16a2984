package handlers

import "sync"

// The messages the handlers exchange are the topology's contracts
// (package contracts): contracts.Proposal, ExecutionMetrics,
// PatternDiscovered, ConsensusResult, RollbackTrigger and SafetyProfile.

// RollbackThreshold is the error rate above which the Guardian orders a
// rollback.
const RollbackThreshold = 0.5

// applied remembers the keys (business ids: a proposal's, a rollback
// order's) whose effects were applied, so that a message delivered twice —
// normal under at-least-once delivery — is counted once. A real service
// keeps these keys where its effects live (on PostgreSQL, written in the
// transaction that acks the message); the examples keep them in memory for
// the life of the process.
type applied struct {
	mu   sync.Mutex
	keys map[string]struct{}
}

// has reports whether key was applied.
func (a *applied) has(key string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.keys[key]
	return ok
}

// mark records key and reports whether it is new: the effect is counted
// only then, even when two deliveries of one message run at once.
func (a *applied) mark(key string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.keys[key]; ok {
		return false
	}
	if a.keys == nil {
		a.keys = map[string]struct{}{}
	}
	a.keys[key] = struct{}{}
	return true
}
