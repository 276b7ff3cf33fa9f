package repo

// bufList is a free list of chunk buffers. Unlike a sync.Pool it keeps its
// buffers across garbage collections, so a buffer keeps the capacity that a
// large chunk grew it to instead of being dropped and grown again, which
// cost the snapshot pipeline a copy of most large chunks. It holds at most
// as many buffers as the pipeline has in flight; extra ones are dropped.
type bufList struct {
	free chan *[]byte
	size int // capacity of new buffers
}

func newBufList(n, size int) *bufList {
	return &bufList{free: make(chan *[]byte, n), size: size}
}

// get returns an empty buffer.
func (l *bufList) get() *[]byte {
	select {
	case b := <-l.free:
		return b
	default:
		b := make([]byte, 0, l.size)
		return &b
	}
}

// put returns b, holding data that is no longer used, to the list.
func (l *bufList) put(b *[]byte, data []byte) {
	if cap(data) > cap(*b) {
		*b = data[:0] // data grew the buffer
	} else {
		*b = (*b)[:0]
	}
	select {
	case l.free <- b:
	default:
	}
}
