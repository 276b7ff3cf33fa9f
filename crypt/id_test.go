package crypt

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestIDString(t *testing.T) {
	var id ID
	if !id.IsNull() {
		t.Error("zero ID is not null")
	}
	for i := range id {
		id[i] = byte(i * 7)
	}
	if id.IsNull() {
		t.Error("non-zero ID is null")
	}
	s := id.String()
	if len(s) != 64 || s != strings.ToLower(s) {
		t.Fatalf("String() = %q, want 64 lowercase hex", s)
	}
	if got := id.Short(); got != s[:8] {
		t.Errorf("Short() = %q, want %q", got, s[:8])
	}
	got, err := ParseID(s)
	if err != nil || got != id {
		t.Fatalf("ParseID(%q) = %v, %v", s, got, err)
	}
}

func TestParseIDRejects(t *testing.T) {
	valid := strings.Repeat("0123456789abcdef", 4)
	for _, s := range []string{
		"",
		valid[:63],
		valid + "0",
		strings.ToUpper(valid),
		"g" + valid[1:],
		" " + valid[1:],
		valid[:62] + "\xff",
	} {
		if _, err := ParseID(s); err == nil {
			t.Errorf("ParseID(%q) succeeded", s)
		}
	}
}

func TestIDJSON(t *testing.T) {
	type doc struct {
		ID  ID   `json:"id"`
		IDs []ID `json:"ids"`
	}
	in := doc{ID: Hash([]byte("a")), IDs: []ID{Hash([]byte("b")), {}}}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(`"id":"`+in.ID.String()+`"`)) {
		t.Errorf("ID not encoded as hex string: %s", data)
	}
	var out doc
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	if out.ID != in.ID || len(out.IDs) != 2 || out.IDs[0] != in.IDs[0] || !out.IDs[1].IsNull() {
		t.Errorf("round trip: got %+v, want %+v", out, in)
	}
	if err := json.Unmarshal([]byte(`{"id":"abc"}`), &out); err == nil {
		t.Error("short hex ID accepted")
	}
}

func TestHashers(t *testing.T) {
	// Unkeyed BLAKE3-256 of the empty input, from the BLAKE3 reference vectors.
	const empty = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
	if got := Hash(nil).String(); got != empty {
		t.Errorf("Hash(nil) = %s, want %s", got, empty)
	}
	// Keyed BLAKE3-256 of the 1024-byte reference input under the reference key.
	var ref MasterKey
	copy(ref.ID[:], "whats the Elvish word for friend")
	input := make([]byte, 1024)
	for i := range input {
		input[i] = byte(i % 251)
	}
	const keyed1024 = "75c46f6f3d9eb4f55ecaaee480db732e6c2105546f1e675003687c31719c7ba4"
	if got := ref.BlobID(input).String(); got != keyed1024 {
		t.Errorf("BlobID(reference input) = %s, want %s", got, keyed1024)
	}

	k := testKey()
	data := bytes.Repeat([]byte("streaming hashers must agree "), 1000)
	h, kh := NewHasher(), k.NewIDHasher()
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 777)
		h.Write(rest[:n])
		kh.Write(rest[:n])
		rest = rest[n:]
	}
	if got := ID(h.Sum(nil)); got != Hash(data) {
		t.Errorf("NewHasher = %s, Hash = %s", got, Hash(data))
	}
	if got := ID(kh.Sum(nil)); got != k.BlobID(data) {
		t.Errorf("NewIDHasher = %s, BlobID = %s", got, k.BlobID(data))
	}
	if k.BlobID(data) == Hash(data) {
		t.Error("keyed and unkeyed IDs agree")
	}
	other := testKey()
	other.ID[0] ^= 1
	if other.BlobID(data) == k.BlobID(data) {
		t.Error("BlobID does not depend on the ID key")
	}
}
