package nats

import (
	"strconv"
	"strings"
)

// Naming. A queue name (letters, digits, '_', '.', '-') becomes a token
// by replacing '.' (a subject separator, and not allowed in stream names)
// with '=' (which queue names never contain, so the mapping is one to
// one). With the default prefix QF:
//
//	queue stream     QF_<token>          subject QF.q.<token>
//	queue consumer   workers             (on each queue stream)
//	dead letters     QF-DLQ              subjects QF.dlq.<token>
//	delivery state   QF-STATE            subjects QF.state.<token>.<stream seq>
//	instances        QF-REGISTRY         key-value bucket (stream KV_QF-REGISTRY)
//
// Queue streams start with "<prefix>_" and the two system streams with
// "<prefix>-", so no queue name can collide with them.
type names struct{ prefix string }

// consumerName is the durable pull consumer on every queue stream, shared
// by every subscription and process of the consuming side.
const consumerName = "workers"

func token(queue string) string { return strings.ReplaceAll(queue, ".", "=") }

func queueOfToken(tok string) string { return strings.ReplaceAll(tok, "=", ".") }

func (n names) stream(queue string) string  { return n.prefix + "_" + token(queue) }
func (n names) subject(queue string) string { return n.prefix + ".q." + token(queue) }
func (n names) queueSubjects() string       { return n.prefix + ".q.>" }

func (n names) dlqStream() string                { return n.prefix + "-DLQ" }
func (n names) dlqSubject(queue string) string   { return n.prefix + ".dlq." + token(queue) }
func (n names) dlqSubjects() string              { return n.prefix + ".dlq.>" }
func (n names) stateStream() string              { return n.prefix + "-STATE" }
func (n names) registry() string                 { return n.prefix + "-REGISTRY" }
func (n names) stateSubjects() string            { return n.prefix + ".state.>" }
func (n names) stateQueueFilter(q string) string { return n.prefix + ".state." + token(q) + ".*" }

func (n names) stateSubject(queue string, seq uint64) string {
	return n.prefix + ".state." + token(queue) + "." + strconv.FormatUint(seq, 10)
}

// queueOfDLQSubject returns the queue a dead-letter subject belongs to.
func (n names) queueOfDLQSubject(subject string) string {
	return queueOfToken(strings.TrimPrefix(subject, n.prefix+".dlq."))
}

// seqOfStateSubject returns the stream sequence a state subject is about.
func seqOfStateSubject(subject string) (uint64, bool) {
	i := strings.LastIndexByte(subject, '.')
	if i < 0 {
		return 0, false
	}
	seq, err := strconv.ParseUint(subject[i+1:], 10, 64)
	return seq, err == nil
}
