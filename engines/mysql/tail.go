package mysql

// byteTail keeps the last max bytes written to it.
type byteTail struct {
	max int
	buf []byte
}

func (t *byteTail) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= t.max {
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return n, nil
	}
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return n, nil
}

func (t *byteTail) bytes() []byte { return t.buf }
