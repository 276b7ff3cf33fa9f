package repo

import "sync/atomic"

// Progress holds counters that a snapshot or restore updates while it runs,
// so a display can poll them from another goroutine.
type Progress struct {
	// Bytes is the number of stream bytes read (snapshot) or written (restore).
	Bytes atomic.Int64
	// Added is the number of bytes added to the repository (snapshot only).
	Added atomic.Int64
}

func (p *Progress) addBytes(n int64) {
	if p != nil {
		p.Bytes.Add(n)
	}
}

func (p *Progress) addAdded(n int64) {
	if p != nil {
		p.Added.Add(n)
	}
}
