package crypt

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// testKey returns a fixed master key: Encrypt = 00..1f, ID = 20..3f.
func testKey() *MasterKey {
	var k MasterKey
	for i := range KeySize {
		k.Encrypt[i] = byte(i)
		k.ID[i] = byte(KeySize + i)
	}
	return &k
}

func testSalt() (salt [SaltSize]byte) {
	for i := range salt {
		salt[i] = byte(0x40 + i)
	}
	return salt
}

func TestMasterKeyJSON(t *testing.T) {
	k, err := NewMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]string
	if err := json.Unmarshal(data, &fields); err != nil || len(fields) != 2 || fields["encrypt"] == "" || fields["id"] == "" {
		t.Fatalf("master key JSON %s: want {encrypt, id} base64 strings (%v)", data, err)
	}
	var back MasterKey
	if err := json.Unmarshal(data, &back); err != nil || back != *k {
		t.Fatalf("round trip failed: %v", err)
	}
	for _, bad := range []string{`{"encrypt":"AAAA","id":"AAAA"}`, `{}`, `[1,2]`, `{"encrypt":"!!"}`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func TestSealerRoundTrip(t *testing.T) {
	k := testKey()
	s, err := k.Subkey(testSalt())
	if err != nil {
		t.Fatal(err)
	}
	pt := []byte("some blob plaintext")
	ad := []byte("blob id")
	prefix := []byte("prefix")
	sealed := s.Seal(bytes.Clone(prefix), 3, pt, ad)
	if !bytes.HasPrefix(sealed, prefix) || len(sealed) != len(prefix)+len(pt)+Overhead {
		t.Fatalf("Seal did not append %d bytes to dst", len(pt)+Overhead)
	}
	sealed = sealed[len(prefix):]
	got, err := s.Open([]byte("x"), 3, sealed, ad)
	if err != nil || string(got) != "x"+string(pt) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if bytes.Equal(s.Seal(nil, 4, pt, ad), sealed) {
		t.Error("different nonces give the same ciphertext")
	}

	other, _ := k.Subkey([SaltSize]byte{1})
	for name, open := range map[string]func() ([]byte, error){
		"wrong nonce":  func() ([]byte, error) { return s.Open(nil, 4, sealed, ad) },
		"wrong ad":     func() ([]byte, error) { return s.Open(nil, 3, sealed, []byte("other")) },
		"wrong salt":   func() ([]byte, error) { return other.Open(nil, 3, sealed, ad) },
		"truncated":    func() ([]byte, error) { return s.Open(nil, 3, sealed[:len(sealed)-1], ad) },
		"too short":    func() ([]byte, error) { return s.Open(nil, 3, sealed[:Overhead-1], ad) },
		"empty sealed": func() ([]byte, error) { return s.Open(nil, 3, nil, ad) },
	} {
		if _, err := open(); !errors.Is(err, ErrAuth) {
			t.Errorf("%s: err = %v, want ErrAuth", name, err)
		}
	}
	for i := range len(sealed) * 8 {
		bad := bytes.Clone(sealed)
		bad[i/8] ^= 1 << (i % 8)
		if _, err := s.Open(nil, 3, bad, ad); !errors.Is(err, ErrAuth) {
			t.Fatalf("flipped bit %d: err = %v, want ErrAuth", i, err)
		}
	}
}

func TestSealFile(t *testing.T) {
	k, err := NewMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, pt := range [][]byte{nil, []byte("{}"), bytes.Repeat([]byte{7}, 100000)} {
		sealed, err := k.SealFile("index", pt)
		if err != nil {
			t.Fatal(err)
		}
		if len(sealed) != 1+SaltSize+len(pt)+Overhead || sealed[0] != FileVersion {
			t.Fatalf("sealed file: %d bytes, version %d", len(sealed), sealed[0])
		}
		got, err := k.OpenFile("index", sealed)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("OpenFile: %v", err)
		}
	}
	a, _ := k.SealFile("config", []byte("same"))
	b, _ := k.SealFile("config", []byte("same"))
	if bytes.Equal(a[1:1+SaltSize], b[1:1+SaltSize]) {
		t.Error("two sealed files share a salt")
	}
}

func TestOpenFileRejects(t *testing.T) {
	k := testKey()
	sealed, err := k.SealFile("snapshot", []byte(`{"paths":["/"]}`))
	if err != nil {
		t.Fatal(err)
	}
	wrongKey := testKey()
	wrongKey.Encrypt[31] ^= 0x80
	badVersion := bytes.Clone(sealed)
	badVersion[0] = 2
	for name, open := range map[string]func() ([]byte, error){
		"wrong kind":  func() ([]byte, error) { return k.OpenFile("index", sealed) },
		"wrong key":   func() ([]byte, error) { return wrongKey.OpenFile("snapshot", sealed) },
		"bad version": func() ([]byte, error) { return k.OpenFile("snapshot", badVersion) },
		"empty":       func() ([]byte, error) { return k.OpenFile("snapshot", nil) },
		"header only": func() ([]byte, error) { return k.OpenFile("snapshot", sealed[:1+SaltSize+Overhead-1]) },
		"truncated":   func() ([]byte, error) { return k.OpenFile("snapshot", sealed[:len(sealed)-1]) },
		"extended":    func() ([]byte, error) { return k.OpenFile("snapshot", append(bytes.Clone(sealed), 0)) },
	} {
		if _, err := open(); !errors.Is(err, ErrAuth) {
			t.Errorf("%s: err = %v, want ErrAuth", name, err)
		}
	}
	for i := range len(sealed) * 8 {
		bad := bytes.Clone(sealed)
		bad[i/8] ^= 1 << (i % 8)
		if _, err := k.OpenFile("snapshot", bad); !errors.Is(err, ErrAuth) {
			t.Fatalf("flipped bit %d: err = %v, want ErrAuth", i, err)
		}
	}
}

func TestSealerConcurrent(t *testing.T) {
	s, err := testKey().Subkey(testSalt())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	for g := range 4 {
		go func() {
			for i := range 100 {
				n := uint64(g*100 + i)
				pt := []byte{byte(g), byte(i)}
				got, err := s.Open(nil, n, s.Seal(nil, n, pt, nil), nil)
				if err == nil && !bytes.Equal(got, pt) {
					err = errors.New("round trip changed the plaintext")
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
