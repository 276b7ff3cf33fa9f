package crypt

import (
	"bytes"
	"encoding/hex"
	"testing"
	"time"
)

// The vectors in this file pin bk's cryptographic format: keyed and unkeyed
// IDs, subkey derivation, the GCM nonce layout, the sealed-file layout and
// key files. A change to any of them is a format change: bump the version and
// update repo/FORMAT.md rather than the constant.

var goldenPlaintext = []byte("bk golden vector: the quick brown fox jumps over the lazy dog")

const (
	goldenHash   = "807c4e3a4eaa55afd247426f33376806342e2dfcc268605479f68426978a5288"
	goldenBlobID = "553bc09180121bca0bd25d9eaf2d203dfe5434121c013655180299d7a531fb48"
	// Subkey(testSalt()).Seal(nil, 7, goldenPlaintext, "golden ad")
	goldenSealed = "5c6711c70dd5c7cb95d1dc588fa623de54bac6c6dfab147dec17aeaed2f146d6744366c6a0032d37eed01595e969d3dbd2c2431e264fb2c1cb09aa13ce9bceed727dda9a0a555d5fdf91ba16b0"
	// sealFile("config", testSalt(), goldenPlaintext)
	goldenSealedFile = "01404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f9a8c34b3911460b2acac68c581ed34e90aba32623939f36e13d08bc6a6a1cc9cc4e0c3b7a348570ca417d9cbfb2f725fb61a86027999ffcecdd8fc16433e23b79053d42d93d14cc3ac789a4a0b"
	// newKeyFile("golden password", testKey(), TestKDF, ..., testSalt(), nonce 60..6b).Data
	goldenKeyFileData = "606162636465666768696a6bc61bd3fc73c4b109af3a12925693ca942029e7dce877ada36338f6718a62cc6cc0d5e7ea061dbf7a62779dcf406109fa9ff966eb0325f26a9890ca4de24c130a6c8b093bece8c2f19a8f498fc553e048587448b7929091551a85ea6981a37c97de35b7dc8904fb99c058798d0563501c07aa72f39cd7d3ed3ebe45016339"
)

func checkGolden(t *testing.T, name string, got []byte, want string) {
	t.Helper()
	if h := hex.EncodeToString(got); h != want {
		t.Errorf("%s changed (format change?):\n got %s\nwant %s", name, h, want)
	}
}

func TestGoldenIDs(t *testing.T) {
	k := testKey()
	id := Hash(goldenPlaintext)
	checkGolden(t, "Hash", id[:], goldenHash)
	id = k.BlobID(goldenPlaintext)
	checkGolden(t, "BlobID", id[:], goldenBlobID)
}

func TestGoldenSeal(t *testing.T) {
	k := testKey()
	s, err := k.Subkey(testSalt())
	if err != nil {
		t.Fatal(err)
	}
	sealed := s.Seal(nil, 7, goldenPlaintext, []byte("golden ad"))
	checkGolden(t, "Seal", sealed, goldenSealed)
	if pt, err := s.Open(nil, 7, sealed, []byte("golden ad")); err != nil || !bytes.Equal(pt, goldenPlaintext) {
		t.Errorf("Open golden: %v", err)
	}
}

func TestGoldenSealFile(t *testing.T) {
	k := testKey()
	salt := testSalt()
	file, err := k.sealFile("config", salt, goldenPlaintext)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "SealFile", file, goldenSealedFile)

	// Structure: version || salt || Seal(Subkey(salt), 0, pt, "bk file config").
	s, _ := k.Subkey(salt)
	want := append([]byte{FileVersion}, salt[:]...)
	want = s.Seal(want, 0, goldenPlaintext, []byte("bk file config"))
	if !bytes.Equal(file, want) {
		t.Error("sealed file does not follow version || salt || GCM(subkey, nonce 0, ad \"bk file \"+kind)")
	}
	if pt, err := k.OpenFile("config", file); err != nil || !bytes.Equal(pt, goldenPlaintext) {
		t.Errorf("OpenFile golden: %v", err)
	}
}

func TestGoldenKeyFile(t *testing.T) {
	var nonce [gcmNonceSize]byte
	for i := range nonce {
		nonce[i] = byte(0x60 + i)
	}
	created := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	kf, err := newKeyFile([]byte("golden password"), testKey(), TestKDF, "host", "user", created, testSalt(), nonce)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "key file data", kf.Data, goldenKeyFileData)
	data, err := kf.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseKeyFile(data)
	if err != nil {
		t.Fatal(err)
	}
	mk, err := parsed.Open([]byte("golden password"))
	if err != nil || *mk != *testKey() {
		t.Errorf("open golden key file: %v", err)
	}
}
