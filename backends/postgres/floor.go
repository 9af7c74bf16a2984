package postgres

import (
	"time"

	"github.com/quantumflow/quantumflow/pubsub"
)

// A claim walks the queue index from its start, and every index entry of
// a row acked since the last vacuum is on its way: dead entries a scan
// cannot mark dead while an open transaction might still see their rows.
// So a long transaction anywhere in the database (a report, a stuck
// session, pg_dump) makes every claim walk everything consumed since it
// began: the held-back vacuum scenario measured 0.18x the rate without it.
//
// The claim floor avoids the walk. After each claim the backend keeps the
// first claimed row's place in delivery order, less floorMargin, and the
// next claims of the queue start reading the index there: the rows before
// it were claimed, so all that lies there is dead entries. Rows of a
// higher or lower priority than the floor's are read in full (they are
// separate ranges of the index, normally small).
//
// A row can come back to life behind the floor: a message given back, a
// retry or a lease returned, a delayed message coming due, a publish
// whose transaction committed more than floorMargin after it began, or
// rows a failed claim of another backend left. So a claim reads the whole
// queue again when this backend returned messages to it or a due time it
// knows of has come, and otherwise at least every floorPeriod: fifty
// times what the last full claim took (2% of claim time at most), within
// [floorMinPeriod, floorMaxPeriod]. That bounds how late such a row comes
// out: floorMinPeriod with a healthy table, more only while full claims
// are slow, which is when the floor pays.
const (
	floorMargin    = 50 * time.Millisecond
	floorMinPeriod = 100 * time.Millisecond
	floorMaxPeriod = 30 * time.Second
	floorPeriods   = 50
)

// claimFloor is where a queue's next claim starts reading; its zero value
// says to read the queue in full.
type claimFloor struct {
	priority int32     // the floor's priority
	from     time.Time // rows of that priority created before this were claimed
	fullAt   time.Time // when the next claim reads in full at the latest
	rewindAt time.Time // when rows may be back behind the floor, if known
}

// floor returns where a claim starting now starts reading, ok false for
// a full claim.
func (s *queueState) floor(now time.Time) (claimFloor, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.claimFloor
	full := f.from.IsZero() || !now.Before(f.fullAt) || (!f.rewindAt.IsZero() && !now.Before(f.rewindAt))
	return f, !full
}

// claimed moves the floor to the first message a claim that started at
// start took (in delivery order); after a full claim it sets when the
// next is due, fifty times what this one took. A claim that took nothing
// leaves the floor where it was.
func (s *queueState) claimed(got []*pubsub.Received, full bool, start, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := &s.claimFloor
	if full {
		f.fullAt = now.Add(min(max(floorPeriods*now.Sub(start), floorMinPeriod), floorMaxPeriod))
		if !f.rewindAt.After(start) {
			f.rewindAt = time.Time{} // this claim read what came back before it
		}
	}
	if len(got) > 0 {
		f.priority = int32(got[0].Priority)
		f.from = time.UnixMicro(got[0].Seq).Add(-floorMargin)
	}
}

// rewind has the queue's first claim that starts at or after t read in
// full: rows may be back behind the floor by then. The caller holds s.mu.
func (f *claimFloor) rewind(t time.Time) {
	if f.rewindAt.IsZero() || t.Before(f.rewindAt) {
		f.rewindAt = t
	}
}
