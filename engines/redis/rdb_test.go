package redis

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestCRC64Jones(t *testing.T) {
	// The check value from Redis's own crc64 test.
	if got := crc64Jones(0, []byte("123456789")); got != 0xe9c6d914c4b8d9ca {
		t.Fatalf("crc64Jones = %016x, want e9c6d914c4b8d9ca", got)
	}
	// Split updates agree with one update.
	if got := crc64Jones(crc64Jones(0, []byte("1234")), []byte("56789")); got != 0xe9c6d914c4b8d9ca {
		t.Fatalf("split crc64Jones = %016x", got)
	}
}

// fakeRDB builds an RDB-shaped stream: header, body, EOF opcode, CRC64.
func fakeRDB(body []byte, zeroCRC bool) []byte {
	b := append([]byte("REDIS0010"), body...)
	b = append(b, rdbOpEOF)
	var sum uint64
	if !zeroCRC {
		sum = crc64Jones(0, b)
	}
	return binary.LittleEndian.AppendUint64(b, sum)
}

// runCheck writes stream in pieces of size chunk and returns check's verdict
// or the first Write error.
func runCheck(stream []byte, chunk int) (off bool, version int, err error) {
	var c rdbCheck
	for len(stream) > 0 {
		n := min(chunk, len(stream))
		if _, err := c.Write(stream[:n]); err != nil {
			return false, 0, err
		}
		stream = stream[n:]
	}
	off, err = c.check()
	return off, c.version, err
}

func TestRDBCheck(t *testing.T) {
	body := bytes.Repeat([]byte("\xfa\x09redis-ver\x067.0.15 some body bytes\x00\xff"), 50)
	good := fakeRDB(body, false)
	for _, chunk := range []int{1, 3, 7, 8, 9, 10, 64, len(good)} {
		off, v, err := runCheck(good, chunk)
		if err != nil || off || v != 10 {
			t.Fatalf("chunk %d: off=%v version=%d err=%v", chunk, off, v, err)
		}
	}
	// The smallest RDB: header, EOF, checksum.
	if _, _, err := runCheck(fakeRDB(nil, false), 4); err != nil {
		t.Fatalf("empty RDB: %v", err)
	}

	bad := func(name string, stream []byte, want string) {
		t.Helper()
		for _, chunk := range []int{1, 5, len(stream) + 1} {
			_, _, err := runCheck(stream, chunk)
			if !errors.Is(err, ErrInvalidRDB) || !strings.Contains(err.Error(), want) {
				t.Errorf("%s (chunk %d): err = %v, want ErrInvalidRDB with %q", name, chunk, err, want)
			}
		}
	}
	bad("truncated", good[:len(good)-100], "no EOF opcode")
	bad("truncated in the checksum", good[:len(good)-3], "")
	bad("header only", good[:9], "shorter than")
	bad("empty", nil, "shorter than")
	flipped := bytes.Clone(good)
	flipped[200] ^= 0x01
	bad("flipped byte", flipped, "CRC64 mismatch")
	flippedCRC := bytes.Clone(good)
	flippedCRC[len(flippedCRC)-1] ^= 0x80
	bad("flipped checksum", flippedCRC, "CRC64 mismatch")
	magic := bytes.Clone(good)
	copy(magic, "RESIS")
	bad("bad magic", magic, "bad magic")
	version := bytes.Clone(good)
	copy(version[5:], "00x1")
	bad("bad version", version, "bad version")

	off, _, err := runCheck(fakeRDB(body, true), 16)
	if err != nil || !off {
		t.Fatalf("zero checksum: off=%v err=%v, want accepted with off", off, err)
	}
	// A zero checksum does not excuse a missing EOF opcode.
	z := fakeRDB(body, true)
	z[len(z)-9] = 0
	bad("zero checksum, no EOF", z, "no EOF opcode")
}

// TestRDBCheckBadMagicFailsEarly checks that garbage is refused as soon as
// the header is complete, before the rest is streamed.
func TestRDBCheckBadMagicFailsEarly(t *testing.T) {
	var c rdbCheck
	if _, err := c.Write([]byte("HTTP/1.1 200")); !errors.Is(err, ErrInvalidRDB) {
		t.Fatalf("Write = %v, want ErrInvalidRDB", err)
	}
}

func TestCopyUntilMark(t *testing.T) {
	mark := []byte(strings.Repeat("0123456789", 4))
	payload := fakeRDB(bytes.Repeat([]byte("abcdefgh"), 20000), false)
	stream := append(append(bytes.Clone(payload), mark...), "*1\r\n$4\r\nPING\r\n"...)
	for name, r := range map[string]func() io.Reader{
		"whole":    func() io.Reader { return bytes.NewReader(stream) },
		"one byte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(stream)) },
		"half":     func() io.Reader { return iotest.HalfReader(bytes.NewReader(stream)) },
	} {
		var out bytes.Buffer
		n, err := copyUntilMark(&out, r(), mark)
		if err != nil || n != int64(len(payload)) || !bytes.Equal(out.Bytes(), payload) {
			t.Fatalf("%s: n=%d err=%v, equal=%v", name, n, err, bytes.Equal(out.Bytes(), payload))
		}
	}
	// No mark: the stream was cut.
	var out bytes.Buffer
	if _, err := copyUntilMark(&out, bytes.NewReader(payload), mark); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("no mark: err = %v, want ErrUnexpectedEOF", err)
	}
}

func TestParseKeyspace(t *testing.T) {
	info := "# Keyspace\r\ndb0:keys=12,expires=1,avg_ttl=0\r\ndb9:keys=3000,expires=0,avg_ttl=0\r\n"
	tables, err := parseKeyspace(info)
	if err != nil || len(tables) != 2 || tables[0].Name != "db0" || tables[0].Rows != 12 || tables[1].Rows != 3000 {
		t.Fatalf("parseKeyspace = %+v, %v", tables, err)
	}
	if _, err := parseKeyspace("db0:expires=1\r\n"); err == nil {
		t.Fatal("no keys= field accepted")
	}
	if v := infoField("# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n", "redis_version"); v != "7.0.15" {
		t.Fatalf("infoField = %q", v)
	}
}
