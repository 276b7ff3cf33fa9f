package redis

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"strconv"
)

// ErrInvalidRDB marks a stream that is not a complete, intact RDB file.
// Check it with errors.Is.
var ErrInvalidRDB = errors.New("invalid RDB")

// RDB layout, as Redis writes it (part of Redis's format, not bk's):
// "REDIS" + 4 ASCII digits of version, the body, the EOF opcode 0xFF, then
// the CRC64 of every preceding byte as 8 little-endian bytes (0 when the
// server runs with rdbchecksum no).
const (
	rdbMagic     = "REDIS"
	rdbHeaderLen = len(rdbMagic) + 4
	rdbOpEOF     = 0xFF
	rdbCRCLen    = 8
	rdbMinLen    = rdbHeaderLen + 1 + rdbCRCLen
)

// crcTable is Redis's CRC-64/Jones (poly 0xad93d23594c935a9, reflected,
// init 0, no final xor), in hash/crc64's reversed-polynomial form.
var crcTable = crc64.MakeTable(0x95ac9329ac4bc9b5)

// crc64Jones continues Redis's CRC64 over p. hash/crc64 inverts the CRC on
// entry and exit; the inversions here cancel them.
func crc64Jones(crc uint64, p []byte) uint64 {
	return ^crc64.Update(^crc, crcTable, p)
}

// rdbCheck is an io.Writer that validates an RDB file as it passes, keeping
// only the header and the last 8 bytes. A bad header fails the first Write
// that completes it; the rest is judged by check once the stream has ended.
type rdbCheck struct {
	n       int64
	head    [rdbHeaderLen]byte
	crc     uint64          // over every byte but the held ones
	last    byte            // the last byte that went into crc
	hold    [rdbCRCLen]byte // the last up to 8 bytes seen
	held    int
	version int
}

func (c *rdbCheck) Write(p []byte) (int, error) {
	if c.n < int64(rdbHeaderLen) {
		copy(c.head[c.n:], p)
		if c.n+int64(len(p)) >= int64(rdbHeaderLen) {
			if err := c.checkHeader(); err != nil {
				return 0, err
			}
		}
	}
	c.n += int64(len(p))
	if c.held+len(p) <= rdbCRCLen {
		c.held += copy(c.hold[c.held:], p)
		return len(p), nil
	}
	// All but the last 8 bytes of hold+p go into the CRC.
	excess := c.held + len(p) - rdbCRCLen
	if excess <= c.held {
		c.feed(c.hold[:excess])
		k := copy(c.hold[:], c.hold[excess:c.held])
		copy(c.hold[k:], p)
	} else {
		c.feed(c.hold[:c.held])
		c.feed(p[:excess-c.held])
		copy(c.hold[:], p[excess-c.held:])
	}
	c.held = rdbCRCLen
	return len(p), nil
}

func (c *rdbCheck) feed(b []byte) {
	if len(b) > 0 {
		c.crc = crc64Jones(c.crc, b)
		c.last = b[len(b)-1]
	}
}

func (c *rdbCheck) checkHeader() error {
	if !bytes.Equal(c.head[:len(rdbMagic)], []byte(rdbMagic)) {
		return fmt.Errorf("%w: bad magic %q (want %q)", ErrInvalidRDB, c.head[:len(rdbMagic)], rdbMagic)
	}
	digits := c.head[len(rdbMagic):]
	v, err := strconv.Atoi(string(digits))
	if err != nil || v < 1 || bytes.ContainsAny(digits, "+- ") {
		return fmt.Errorf("%w: bad version %q", ErrInvalidRDB, digits)
	}
	c.version = v
	return nil
}

// check judges the whole stream. checksumOff reports a stored checksum of 0,
// which Redis writes when checksums are disabled.
func (c *rdbCheck) check() (checksumOff bool, err error) {
	if c.n < int64(rdbMinLen) {
		return false, fmt.Errorf("%w: only %d bytes, shorter than the smallest RDB file (%d)", ErrInvalidRDB, c.n, rdbMinLen)
	}
	if c.last != rdbOpEOF {
		return false, fmt.Errorf("%w: no EOF opcode before the checksum (byte 0x%02x); the stream is truncated or corrupt", ErrInvalidRDB, c.last)
	}
	stored := binary.LittleEndian.Uint64(c.hold[:])
	switch {
	case stored == 0:
		return true, nil
	case stored != c.crc:
		return false, fmt.Errorf("%w: CRC64 mismatch: stored %016x, computed %016x", ErrInvalidRDB, stored, c.crc)
	}
	return false, nil
}

// copyUntilMark copies r to w up to the 40-byte end mark of a diskless
// transfer ("$EOF:<mark>"), which it consumes but does not write. Bytes
// after the mark (the replication stream) stay unread or are dropped.
// Memory stays bounded by one buffer.
func copyUntilMark(w io.Writer, r io.Reader, mark []byte) (int64, error) {
	buf := make([]byte, 64<<10)
	keep := len(mark) - 1
	held := 0
	var written int64
	for {
		n, rerr := r.Read(buf[held:])
		held += n
		if i := bytes.Index(buf[:held], mark); i >= 0 {
			m, err := w.Write(buf[:i])
			return written + int64(m), err
		}
		if held > keep {
			m, err := w.Write(buf[:held-keep])
			written += int64(m)
			if err != nil {
				return written, err
			}
			held = copy(buf, buf[held-keep:held])
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				rerr = io.ErrUnexpectedEOF
			}
			return written, fmt.Errorf("stream ended before the end mark: %w", rerr)
		}
	}
}
