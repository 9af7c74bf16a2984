package bench

import (
	"fmt"
	"strings"
)

// Payloads are JSON objects of an exact size, because the PostgreSQL
// backends may store payloads as JSON and the sizes compared (256 B, 4 KiB)
// must be the bytes on the wire. The sequence number (a string, since JSON
// numbers cannot have leading zeros) sits at a fixed offset so a handler
// reads it without decoding JSON, keeping the handler's cost
// out of the measurement.
const (
	seqPrefix  = `{"seq":"`
	seqDigits  = 12
	padPrefix  = `","pad":"`
	padSuffix  = `"}`
	minPayload = len(seqPrefix) + seqDigits + len(padPrefix) + len(padSuffix)
)

// payloadTemplate returns a payload of size bytes with sequence number 0.
func payloadTemplate(size int) ([]byte, error) {
	if size < minPayload {
		return nil, fmt.Errorf("payload size %d below the minimum of %d bytes", size, minPayload)
	}
	pad := size - minPayload
	s := seqPrefix + strings.Repeat("0", seqDigits) + padPrefix + strings.Repeat("x", pad) + padSuffix
	return []byte(s), nil
}

// newPayload returns a fresh copy of tmpl carrying seq. Every message gets
// its own slice because backends may keep the slice they were given.
func newPayload(tmpl []byte, seq int64) []byte {
	p := make([]byte, len(tmpl))
	copy(p, tmpl)
	putSeq(p, seq)
	return p
}

func putSeq(p []byte, seq int64) {
	d := p[len(seqPrefix) : len(seqPrefix)+seqDigits]
	for i := seqDigits - 1; i >= 0; i-- {
		d[i] = byte('0' + seq%10)
		seq /= 10
	}
}

// payloadSeq returns the sequence number of a payload made by newPayload.
func payloadSeq(p []byte) (int64, bool) {
	if len(p) < minPayload || string(p[:len(seqPrefix)]) != seqPrefix {
		return 0, false
	}
	var seq int64
	for _, c := range p[len(seqPrefix) : len(seqPrefix)+seqDigits] {
		if c < '0' || c > '9' {
			return 0, false
		}
		seq = seq*10 + int64(c-'0')
	}
	return seq, true
}
