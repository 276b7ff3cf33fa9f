package redis

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/bk-backup/bk/engines"
	"github.com/bk-backup/bk/internal/testenv"
)

// rdbBuilder writes RDB constructs for the scanner tests.
type rdbBuilder struct{ bytes.Buffer }

func (b *rdbBuilder) op(c ...byte) *rdbBuilder { b.Write(c); return b }

// length writes n in the smallest of the 6-, 14-, 32- and 64-bit forms.
func (b *rdbBuilder) length(n uint64) *rdbBuilder {
	switch {
	case n < 1<<6:
		b.WriteByte(byte(n))
	case n < 1<<14:
		b.WriteByte(0x40 | byte(n>>8))
		b.WriteByte(byte(n))
	case n < 1<<32:
		b.WriteByte(0x80)
		b.Write(binary.BigEndian.AppendUint32(nil, uint32(n)))
	default:
		b.WriteByte(0x81)
		b.Write(binary.BigEndian.AppendUint64(nil, n))
	}
	return b
}

func (b *rdbBuilder) str(s string) *rdbBuilder {
	b.length(uint64(len(s)))
	b.WriteString(s)
	return b
}

func (b *rdbBuilder) raw(n int) *rdbBuilder { b.Write(make([]byte, n)); return b }

// sampleRDB has every value type the scanner knows, two databases, expiry
// opcodes, LRU/LFU data, module and function data.
func sampleRDB() []byte {
	var b rdbBuilder
	b.WriteString("REDIS0012")
	b.op(opAux).str("redis-ver").str("7.4.0")
	b.op(opAux).str("ctime").op(0xC2).raw(4) // a 32-bit integer string
	b.op(opModuleAux).length(12345).length(2).length(1).length(2).length(7).length(5).str("aux").length(0)
	b.op(opFunction2).str("#!lua name=lib\nredis.register_function('f', function() return 1 end)")
	b.op(opSelectDB).length(0)
	b.op(opResizeDB).length(20).length(2)
	b.op(opSlotInfo).length(1).length(20).length(2)
	b.op(typeString).str("s").str("v")
	b.op(opExpireMS).raw(8).op(typeString).str("int8").op(0xC0).raw(1)
	b.op(opExpire).raw(4).op(opIdle).length(300).op(typeString).str("int16").op(0xC1).raw(2)
	b.op(opFreq, 7).op(typeString).str("lzf").op(0xC3).length(3).length(10).raw(3)
	b.op(typeList).str("l").length(2).str("a").str("b")
	b.op(typeSet).str("set").length(1).str("m")
	b.op(typeZSet).str("z").length(3).str("a").op(3).WriteString("1.5")
	b.str("b").op(253)
	b.str("c").op(255)
	b.op(typeHash).str("h").length(1).str("f").str("v")
	b.op(typeZSet2).str("z2").length(1).str("m").raw(8)
	b.op(typeModule2).str("mod").length(99).length(1).length(5).length(2).length(6).length(3).raw(4).length(4).raw(8).length(5).str("x").length(0)
	for _, t := range []byte{typeHashZipmap, typeListZiplist, typeSetIntset, typeZSetZiplist, typeHashZiplist, typeHashListpack, typeZSetListpack, typeSetListpack, typeHashLPExPre} {
		b.op(t).str(fmt.Sprintf("enc%d", t)).str("blob")
	}
	b.op(typeHashListpackX).str("lpex").raw(8).str("blob")
	b.op(typeListQuick).str("q1").length(2).str("zl").str("zl")
	b.op(typeListQuick2).str("q2").length(2).length(2).str("lp").length(1).str("plain")
	b.op(typeHashMeta).str("hm").raw(8).length(2).length(0).str("f").str("v").length(5).str("g").str("w")
	b.op(typeHashMetaPre).str("hmp").length(1).length(1700000000000).str("f").str("v")
	// Streams v1, v2, v3, each with a group, a PEL and a consumer.
	for _, t := range []byte{typeStream, typeStream2, typeStream3} {
		b.op(t).str(fmt.Sprintf("stream%d", t))
		b.length(1).str(strings.Repeat("i", 16)).str("listpack")
		b.length(3).length(1700000000000).length(0)
		if t >= typeStream2 {
			b.length(1).length(0).length(0).length(0).length(3)
		}
		b.length(1).str("group").length(1700000000000).length(0)
		if t >= typeStream2 {
			b.length(2)
		}
		b.length(1).raw(16).raw(8).length(1)
		b.length(1).str("consumer").raw(8)
		if t >= typeStream3 {
			b.raw(8)
		}
		b.length(1).raw(16)
	}
	b.op(opSelectDB).length(300)
	b.op(opResizeDB).length(1).length(0)
	b.op(typeString).str(strings.Repeat("k", 100)).str(strings.Repeat("v", 20000))
	b.op(rdbOpEOF)
	return fakeRDBVersion(b.Bytes())
}

// fakeRDBVersion appends the CRC64 of an RDB that already ends in EOF.
func fakeRDBVersion(b []byte) []byte {
	return binary.LittleEndian.AppendUint64(b, crc64Jones(0, b))
}

func TestScanKeyspace(t *testing.T) {
	rdb := sampleRDB()
	for name, r := range map[string]io.Reader{
		"whole":    bytes.NewReader(rdb),
		"one byte": iotest.OneByteReader(bytes.NewReader(rdb)),
	} {
		ks, warnings, err := scanKeyspace(r)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := &engines.Keyspace{Keys: 28, Expires: 2, DBs: []engines.KeyspaceDB{{DB: 0, Keys: 27, Expires: 2}, {DB: 300, Keys: 1}}}
		if fmt.Sprint(ks) != fmt.Sprint(want) {
			t.Errorf("%s: keyspace %+v, want %+v", name, ks, want)
		}
		// db0's RESIZEDB announced 20 keys: the scanner says so.
		if len(warnings) != 1 || !strings.Contains(warnings[0], "db0: RESIZEDB announced 20") {
			t.Errorf("%s: warnings %q", name, warnings)
		}
	}
	// The file passes the stream check too: the builder writes real RDBs.
	if _, _, err := runCheck(rdb, 100); err != nil {
		t.Fatal(err)
	}

	// An empty server: no databases, zero keys, not nil.
	ks, _, err := scanKeyspace(bytes.NewReader(fakeRDB(nil, false)))
	if err != nil || ks == nil || ks.Keys != 0 || ks.DBs == nil || len(ks.DBs) != 0 {
		t.Fatalf("empty RDB: %+v, %v", ks, err)
	}

	// Every truncation is an error, never a panic or a count.
	for i := range len(rdb) - rdbCRCLen {
		if _, _, err := scanKeyspace(bytes.NewReader(rdb[:i])); err == nil {
			t.Fatalf("truncated at %d of %d: no error", i, len(rdb))
		}
	}
	bad := func(name string, body []byte, want error) {
		t.Helper()
		_, _, err := scanKeyspace(bytes.NewReader(append([]byte("REDIS0011"), body...)))
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
	}
	bad("unknown type", []byte{200, 1, 'k'}, errRDBFormat)
	bad("pre-GA module", []byte{typeModulePre, 1, 'k'}, errRDBFormat)
	bad("pre-GA functions", []byte{opFunctionPre}, errRDBFormat)
	bad("bad length byte", []byte{typeString, 0x82}, errRDBFormat)
	bad("encoded length", []byte{typeList, 1, 'k', 0xC0}, errRDBFormat)
	bad("unknown string encoding", []byte{typeString, 0xC4}, errRDBFormat)
	bad("unknown module opcode", []byte{typeModule2, 1, 'k', 1, 9}, errRDBFormat)
	bad("huge length", []byte{typeString, 0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, io.ErrUnexpectedEOF)
	bad("huge count", []byte{typeList, 1, 'k', 0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0}, io.ErrUnexpectedEOF)
	bad("huge database", []byte{opSelectDB, 0x81, 0, 0, 0, 1, 0, 0, 0, 0}, errRDBFormat)
}

// FuzzScanKeyspace checks that the key counter never panics or hangs on
// garbage, and that what it counts adds up.
func FuzzScanKeyspace(f *testing.F) {
	f.Add(sampleRDB())
	f.Add(fakeRDB(nil, false))
	f.Add([]byte("REDIS0011\xfe\x00\xfb\x01\x00\x00\x01k\x01v\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ks, _, err := scanKeyspace(bytes.NewReader(b))
		if err != nil {
			return
		}
		var keys, expires int64
		for _, d := range ks.DBs {
			if d.Keys <= 0 || d.Expires < 0 || d.Expires > d.Keys {
				t.Fatalf("bad database counts %+v", d)
			}
			keys += d.Keys
			expires += d.Expires
		}
		if keys != ks.Keys || expires != ks.Expires {
			t.Fatalf("totals %d/%d, databases sum to %d/%d", ks.Keys, ks.Expires, keys, expires)
		}
	})
}

// TestScanKeyspaceRealServer counts the keys of an RDB from the real
// server after adding streams with consumer groups, long lists
// (quicklists), large hashes and compressible strings to its database.
func TestScanKeyspaceRealServer(t *testing.T) {
	testenv.Require(t, "Redis", testAddr)
	c := dialClient(t, testAddr)
	c.cmd(t, "SELECT", testDB)
	if n := c.cmd(t, "DBSIZE").(string); n != "0" {
		t.Fatalf("logical database %s holds %s keys; the test needs it empty", testDB, n)
	}
	t.Cleanup(func() { c.cmd(t, "FLUSHDB") })
	var cmds [][]string
	for i := range 3 {
		s := fmt.Sprintf("stream:%d", i)
		for j := range 200 {
			cmds = append(cmds, []string{"XADD", s, "*", "field", strconv.Itoa(j)})
		}
		cmds = append(cmds, []string{"XGROUP", "CREATE", s, "g", "0"},
			[]string{"XREADGROUP", "GROUP", "g", "alice", "COUNT", "5", "STREAMS", s, ">"})
	}
	long := []string{"RPUSH", "longlist"}
	hash := []string{"HSET", "bighash"}
	for i := range 5000 {
		long = append(long, strings.Repeat("x", i%300))
		hash = append(hash, "f"+strconv.Itoa(i), strconv.Itoa(i))
	}
	cmds = append(cmds, long, hash,
		[]string{"SET", "compressible", strings.Repeat("abc", 10000)},
		[]string{"SET", "number", "12345"},
		[]string{"SET", "bignumber", "1234567890123"},
		[]string{"SET", "soon", "x", "PX", "3600000"},
		[]string{"SET", "later", "x", "EX", "7200"},
		[]string{"PFADD", "hll", "a", "b", "c"},
		[]string{"GEOADD", "geo", "13.361389", "38.115556", "Palermo"},
	)
	c.pipeline(t, cmds)
	want := c.cmd(t, "DBSIZE").(string)

	e, err := New("redis://"+testAddr, Options{Env: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := e.Dump(context.Background(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Warnings) != 0 {
		t.Errorf("warnings %q", m.Warnings)
	}
	ks := keyspaceDB(t, m.Keyspace, testDB)
	if strconv.FormatInt(ks.Keys, 10) != want || ks.Expires != 2 {
		t.Fatalf("db%s counts %+v, want %s keys, 2 expiring", testDB, ks, want)
	}
}
