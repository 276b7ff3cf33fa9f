package redis

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/bk-backup/bk/engines"
)

// RDB opcodes and value types that the key counter walks (Redis's format,
// from its rdb.h, not bk's). Every value type is skipped without being
// decoded: a value's length prefixes say how far.
const (
	opSlotInfo    = 0xF4 // cluster slot sizes: 3 lengths (7.4+)
	opFunction2   = 0xF5 // a function library: one string
	opFunctionPre = 0xF6 // 7.0 release candidates; not supported
	opModuleAux   = 0xF7 // module auxiliary data
	opIdle        = 0xF8 // LRU idle time: a length
	opFreq        = 0xF9 // LFU frequency: one byte
	opAux         = 0xFA // a key and a value string
	opResizeDB    = 0xFB // db_size and expires_size lengths
	opExpireMS    = 0xFC // 8-byte expiry in ms for the next key
	opExpire      = 0xFD // 4-byte expiry in s for the next key
	opSelectDB    = 0xFE // a length: the database of the keys that follow

	typeString        = 0
	typeList          = 1
	typeSet           = 2
	typeZSet          = 3
	typeHash          = 4
	typeZSet2         = 5
	typeModulePre     = 6
	typeModule2       = 7
	typeHashZipmap    = 9
	typeListZiplist   = 10
	typeSetIntset     = 11
	typeZSetZiplist   = 12
	typeHashZiplist   = 13
	typeListQuick     = 14
	typeStream        = 15
	typeHashListpack  = 16
	typeZSetListpack  = 17
	typeListQuick2    = 18
	typeStream2       = 19
	typeSetListpack   = 20
	typeStream3       = 21
	typeHashMetaPre   = 22
	typeHashLPExPre   = 23
	typeHashMeta      = 24
	typeHashListpackX = 25

	// moduleOpEOF ends a module value's annotated stream; the other
	// module opcodes are 1 (signed), 2 (unsigned), 3 (float), 4 (double)
	// and 5 (string).
	moduleOpEOF = 0
)

// errRDBFormat marks an RDB the key counter cannot walk: corrupt, or a
// construct it does not know (a newer format). It is never a dump failure:
// the CRC check judges the stream; only the key counts are lost.
var errRDBFormat = errors.New("unsupported or corrupt RDB structure")

// rdbScanner walks an RDB stream and counts the keys of each database.
type rdbScanner struct {
	r   *bufio.Reader
	off int64 // bytes consumed, for errors
	buf [16]byte
}

// dbCount is what the scanner learns about one database.
type dbCount struct {
	keys, expires int64
	// resized is set when a RESIZEDB opcode gave sizeKeys and sizeExpires.
	resized               bool
	sizeKeys, sizeExpires uint64
}

// scanKeyspace reads an RDB stream up to its EOF opcode and returns the key
// counts of every non-empty database, plus warnings when the RESIZEDB
// opcodes disagree with the keys found. It reads nothing after the EOF
// opcode (the checksum). Garbage gives an error wrapping errRDBFormat or
// the read error, never a panic, and memory stays bounded.
func scanKeyspace(r io.Reader) (*engines.Keyspace, []string, error) {
	s := &rdbScanner{r: bufio.NewReaderSize(r, 64<<10)}
	dbs, err := s.scan()
	if err != nil {
		return nil, nil, fmt.Errorf("count keys at RDB offset %d: %w", s.off, err)
	}
	ks := &engines.Keyspace{DBs: []engines.KeyspaceDB{}}
	var warnings []string
	nums := make([]int, 0, len(dbs))
	for n := range dbs {
		nums = append(nums, n)
	}
	sort.Ints(nums)
	for _, n := range nums {
		c := dbs[n]
		if c.resized && (c.sizeKeys != uint64(c.keys) || c.sizeExpires != uint64(c.expires)) {
			warnings = append(warnings, fmt.Sprintf("RDB db%d: RESIZEDB announced %d keys (%d with an expiry), the file holds %d (%d); the manifest counts what the file holds",
				n, c.sizeKeys, c.sizeExpires, c.keys, c.expires))
		}
		if c.keys == 0 {
			continue
		}
		ks.DBs = append(ks.DBs, engines.KeyspaceDB{DB: n, Keys: c.keys, Expires: c.expires})
		ks.Keys += c.keys
		ks.Expires += c.expires
	}
	return ks, warnings, nil
}

func (s *rdbScanner) scan() (map[int]*dbCount, error) {
	head, err := s.bytes(rdbHeaderLen)
	if err != nil {
		return nil, err
	}
	if string(head[:len(rdbMagic)]) != rdbMagic {
		return nil, fmt.Errorf("%w: bad magic", errRDBFormat)
	}
	dbs := map[int]*dbCount{}
	db := 0
	cur := func() *dbCount {
		c := dbs[db]
		if c == nil {
			c = &dbCount{}
			dbs[db] = c
		}
		return c
	}
	expiring := false // an expiry opcode precedes the next key
	for {
		op, err := s.byte()
		if err != nil {
			return nil, err
		}
		switch op {
		case rdbOpEOF:
			return dbs, nil
		case opSelectDB:
			n, err := s.length()
			if err != nil {
				return nil, err
			}
			if n > math.MaxInt32 {
				return nil, fmt.Errorf("%w: database number %d", errRDBFormat, n)
			}
			db = int(n)
		case opResizeDB:
			a, err := s.length()
			if err != nil {
				return nil, err
			}
			b, err := s.length()
			if err != nil {
				return nil, err
			}
			c := cur()
			c.resized, c.sizeKeys, c.sizeExpires = true, a, b
		case opAux:
			if err := s.skipStrings(2); err != nil {
				return nil, err
			}
		case opExpireMS:
			if err := s.skip(8); err != nil {
				return nil, err
			}
			expiring = true
		case opExpire:
			if err := s.skip(4); err != nil {
				return nil, err
			}
			expiring = true
		case opFreq:
			if err := s.skip(1); err != nil {
				return nil, err
			}
		case opIdle:
			if _, err := s.length(); err != nil {
				return nil, err
			}
		case opSlotInfo:
			for range 3 {
				if _, err := s.length(); err != nil {
					return nil, err
				}
			}
		case opFunction2:
			if err := s.skipString(); err != nil {
				return nil, err
			}
		case opModuleAux:
			// module id, when-opcode, when, then annotated values.
			for range 3 {
				if _, err := s.length(); err != nil {
					return nil, err
				}
			}
			if err := s.skipModuleValue(); err != nil {
				return nil, err
			}
		case opFunctionPre:
			return nil, fmt.Errorf("%w: pre-release function opcode 0x%02x", errRDBFormat, op)
		default:
			// A key-value pair of type op.
			if err := s.skipString(); err != nil { // the key
				return nil, err
			}
			if err := s.skipValue(op); err != nil {
				return nil, err
			}
			c := cur()
			c.keys++
			if expiring {
				c.expires++
			}
			expiring = false
		}
	}
}

// skipValue skips one value of type t.
func (s *rdbScanner) skipValue(t byte) error {
	switch t {
	case typeString, typeHashZipmap, typeListZiplist, typeSetIntset, typeZSetZiplist,
		typeHashZiplist, typeHashListpack, typeZSetListpack, typeSetListpack, typeHashLPExPre:
		return s.skipString()
	case typeHashListpackX:
		if err := s.skip(8); err != nil { // minimum field expiry
			return err
		}
		return s.skipString()
	case typeList, typeSet:
		n, err := s.length()
		if err != nil {
			return err
		}
		return s.repeat(n, s.skipString)
	case typeHash:
		n, err := s.length()
		if err != nil {
			return err
		}
		return s.repeat(n, func() error { return s.skipStrings(2) })
	case typeZSet:
		n, err := s.length()
		if err != nil {
			return err
		}
		return s.repeat(n, func() error {
			if err := s.skipString(); err != nil {
				return err
			}
			// A score as text: a length byte, or 253-255 for nan/±inf.
			l, err := s.byte()
			if err != nil || l >= 253 {
				return err
			}
			return s.skip(uint64(l))
		})
	case typeZSet2:
		n, err := s.length()
		if err != nil {
			return err
		}
		return s.repeat(n, func() error {
			if err := s.skipString(); err != nil {
				return err
			}
			return s.skip(8)
		})
	case typeListQuick, typeListQuick2:
		n, err := s.length()
		if err != nil {
			return err
		}
		return s.repeat(n, func() error {
			if t == typeListQuick2 {
				if _, err := s.length(); err != nil { // container
					return err
				}
			}
			return s.skipString()
		})
	case typeHashMeta, typeHashMetaPre:
		if t == typeHashMeta {
			if err := s.skip(8); err != nil { // minimum field expiry
				return err
			}
		}
		n, err := s.length()
		if err != nil {
			return err
		}
		return s.repeat(n, func() error {
			if _, err := s.length(); err != nil { // the field's TTL
				return err
			}
			return s.skipStrings(2)
		})
	case typeStream, typeStream2, typeStream3:
		return s.skipStream(t)
	case typeModulePre:
		return fmt.Errorf("%w: pre-release module value", errRDBFormat)
	case typeModule2:
		if _, err := s.length(); err != nil { // module id
			return err
		}
		return s.skipModuleValue()
	}
	return fmt.Errorf("%w: unknown value type %d", errRDBFormat, t)
}

// skipStream skips a stream value: listpacks, metadata, consumer groups.
func (s *rdbScanner) skipStream(t byte) error {
	n, err := s.length()
	if err != nil {
		return err
	}
	if err := s.repeat(n, func() error { return s.skipStrings(2) }); err != nil { // master ID, listpack
		return err
	}
	meta := 3 // length, last ID ms and seq
	if t >= typeStream2 {
		meta += 5 // first ID, max deleted ID, entries added
	}
	if err := s.lengths(meta); err != nil {
		return err
	}
	groups, err := s.length()
	if err != nil {
		return err
	}
	return s.repeat(groups, func() error {
		if err := s.skipString(); err != nil { // name
			return err
		}
		ids := 2 // last delivered ID
		if t >= typeStream2 {
			ids++ // entries read
		}
		if err := s.lengths(ids); err != nil {
			return err
		}
		pel, err := s.length()
		if err != nil {
			return err
		}
		if err := s.repeat(pel, func() error {
			if err := s.skip(16 + 8); err != nil { // raw ID, delivery time
				return err
			}
			_, err := s.length() // delivery count
			return err
		}); err != nil {
			return err
		}
		consumers, err := s.length()
		if err != nil {
			return err
		}
		return s.repeat(consumers, func() error {
			if err := s.skipString(); err != nil { // name
				return err
			}
			times := uint64(8) // seen time
			if t >= typeStream3 {
				times += 8 // active time
			}
			if err := s.skip(times); err != nil {
				return err
			}
			pel, err := s.length()
			if err != nil {
				return err
			}
			return s.repeat(pel, func() error { return s.skip(16) })
		})
	})
}

// skipModuleValue skips a module's annotated values up to their EOF mark.
func (s *rdbScanner) skipModuleValue() error {
	for {
		op, err := s.length()
		if err != nil {
			return err
		}
		switch op {
		case moduleOpEOF:
			return nil
		case 1, 2:
			_, err = s.length()
		case 3:
			err = s.skip(4)
		case 4:
			err = s.skip(8)
		case 5:
			err = s.skipString()
		default:
			return fmt.Errorf("%w: unknown module opcode %d", errRDBFormat, op)
		}
		if err != nil {
			return err
		}
	}
}

// repeat calls f n times, stopping at the first error. Every call consumes
// at least one byte, so a huge n ends at the stream's end.
func (s *rdbScanner) repeat(n uint64, f func() error) error {
	for ; n > 0; n-- {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

func (s *rdbScanner) lengths(n int) error {
	for range n {
		if _, err := s.length(); err != nil {
			return err
		}
	}
	return nil
}

func (s *rdbScanner) skipStrings(n int) error {
	for range n {
		if err := s.skipString(); err != nil {
			return err
		}
	}
	return nil
}

// rawLength reads a length prefix. enc reports the special string
// encodings (the top two bits 11), whose kind is then n.
func (s *rdbScanner) rawLength() (n uint64, enc bool, err error) {
	b, err := s.byte()
	if err != nil {
		return 0, false, err
	}
	switch b >> 6 {
	case 0:
		return uint64(b & 0x3F), false, nil
	case 1:
		c, err := s.byte()
		if err != nil {
			return 0, false, err
		}
		return uint64(b&0x3F)<<8 | uint64(c), false, nil
	case 3:
		return uint64(b & 0x3F), true, nil
	}
	switch b {
	case 0x80:
		p, err := s.bytes(4)
		if err != nil {
			return 0, false, err
		}
		return uint64(p[0])<<24 | uint64(p[1])<<16 | uint64(p[2])<<8 | uint64(p[3]), false, nil
	case 0x81:
		p, err := s.bytes(8)
		if err != nil {
			return 0, false, err
		}
		var v uint64
		for _, c := range p {
			v = v<<8 | uint64(c)
		}
		return v, false, nil
	}
	return 0, false, fmt.Errorf("%w: bad length byte 0x%02x", errRDBFormat, b)
}

// length reads a plain length.
func (s *rdbScanner) length() (uint64, error) {
	n, enc, err := s.rawLength()
	if err == nil && enc {
		err = fmt.Errorf("%w: encoded value where a length belongs", errRDBFormat)
	}
	return n, err
}

// skipString skips a string: raw, an encoded integer, or LZF-compressed.
func (s *rdbScanner) skipString() error {
	n, enc, err := s.rawLength()
	if err != nil {
		return err
	}
	if !enc {
		return s.skip(n)
	}
	switch n {
	case 0, 1, 2: // 8-, 16-, 32-bit integers
		return s.skip(1 << n)
	case 3: // LZF: compressed length, plain length, compressed bytes
		clen, err := s.length()
		if err != nil {
			return err
		}
		if _, err := s.length(); err != nil {
			return err
		}
		return s.skip(clen)
	}
	return fmt.Errorf("%w: unknown string encoding %d", errRDBFormat, n)
}

func (s *rdbScanner) byte() (byte, error) {
	b, err := s.r.ReadByte()
	if err != nil {
		return 0, unexpected(err)
	}
	s.off++
	return b, nil
}

// bytes reads n ≤ 16 bytes into the scanner's buffer.
func (s *rdbScanner) bytes(n int) ([]byte, error) {
	p := s.buf[:n]
	if _, err := io.ReadFull(s.r, p); err != nil {
		return nil, unexpected(err)
	}
	s.off += int64(n)
	return p, nil
}

func (s *rdbScanner) skip(n uint64) error {
	for n > 0 {
		k := int(min(n, 1<<30))
		d, err := s.r.Discard(k)
		s.off += int64(d)
		n -= uint64(d)
		if err != nil {
			return unexpected(err)
		}
	}
	return nil
}

// unexpected turns io.EOF into io.ErrUnexpectedEOF: the scanner stops only
// at the RDB's EOF opcode.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
