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
//	delivery state   QF-STATE            subjects QF.state.<token>.<stream seq>,
//	                                     and QF.state.<token>.given.<id> (give-backs)
//	instances        QF-REGISTRY         key-value bucket (stream KV_QF-REGISTRY)
//	audit log        QF-AUDIT            subject QF.audit
//
// Queue streams start with "<prefix>_" and the three system streams with
// "<prefix>-", so no queue name can collide with them.
//
// A backend opened with a namespace uses the prefix <prefix>-<namespace>,
// the namespace's '_' written '-' (QF-qfdemo-1a2b for qfdemo_1a2b): its
// queue streams are QF-qfdemo-1a2b_<token>, its subjects
// QF-qfdemo-1a2b.q.<token>, and so on. The names are apart from the
// namespace-less ones (which start "QF_" or are exactly QF-DLQ, QF-STATE,
// QF-AUDIT and QF-REGISTRY) and from every other namespace's: a namespace has no
// '-', and after the '_' to '-' mapping no '_' either, so where the
// namespace ends in a stream name is never in doubt (with the namespace
// as given, namespace a's queue b_c and namespace a_b's queue c would
// share a stream).
type names struct{ prefix string }

// namesOf returns the names of a backend with the URL's prefix, opened in
// namespace ns (none when empty).
func namesOf(prefix, ns string) names {
	if ns == "" {
		return names{prefix: prefix}
	}
	return names{prefix: prefix + "-" + strings.ReplaceAll(ns, "_", "-")}
}

// consumerName is the durable pull consumer on every queue stream, shared
// by every subscription and process of the consuming side.
const consumerName = "workers"

// pullSubject is where pull requests for the messages of stream's
// consumer go (JetStream's API).
func pullSubject(stream string) string {
	return "$JS.API.CONSUMER.MSG.NEXT." + stream + "." + consumerName
}

func token(queue string) string { return strings.ReplaceAll(queue, ".", "=") }

func queueOfToken(tok string) string { return strings.ReplaceAll(tok, "=", ".") }

func (n names) stream(queue string) string  { return n.prefix + "_" + token(queue) }
func (n names) streamPrefix() string        { return n.prefix + "_" }
func (n names) subject(queue string) string { return n.prefix + ".q." + token(queue) }
func (n names) queueSubjects() string       { return n.prefix + ".q.>" }

func (n names) dlqStream() string                { return n.prefix + "-DLQ" }
func (n names) dlqSubject(queue string) string   { return n.prefix + ".dlq." + token(queue) }
func (n names) dlqSubjects() string              { return n.prefix + ".dlq.>" }
func (n names) stateStream() string              { return n.prefix + "-STATE" }
func (n names) registry() string                 { return n.prefix + "-REGISTRY" }
func (n names) auditStream() string              { return n.prefix + "-AUDIT" }
func (n names) auditSubject() string             { return n.prefix + ".audit" }
func (n names) stateSubjects() string            { return n.prefix + ".state.>" }
func (n names) stateQueueFilter(q string) string { return n.prefix + ".state." + token(q) + ".*" }

// recordSubject is a give-back record's subject (see givenBackRecord): a
// token deeper than the queue's state subjects, so that stateQueueFilter
// does not match it.
func (n names) recordSubject(queue, id string) string {
	return n.prefix + ".state." + token(queue) + ".given." + id
}

func (n names) recordFilter(queue string) string {
	return n.prefix + ".state." + token(queue) + ".given.*"
}

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
