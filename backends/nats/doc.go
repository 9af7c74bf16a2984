// Package nats is QuantumFlow's NATS JetStream backend (nats:// and
// tls:// URLs). Documentation is completed below.
package nats
