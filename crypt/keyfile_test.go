package crypt

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestKeyFileRoundTrip(t *testing.T) {
	mk, err := NewMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	password := []byte("correct horse battery staple")
	kf, err := NewKeyFile(password, mk, TestKDF, "host", "user")
	if err != nil {
		t.Fatal(err)
	}
	data, err := kf.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseKeyFile(data)
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Host != "host" || parsed.Username != "user" || parsed.Params != TestKDF || !parsed.Created.Equal(kf.Created) {
		t.Errorf("parsed key file %+v differs from %+v", parsed, kf)
	}
	got, err := parsed.Open(password)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *mk {
		t.Error("opened master key differs")
	}

	_, err = parsed.Open([]byte("Correct horse battery staple"))
	if !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("wrong password: err = %v, want ErrWrongPassword", err)
	}
	if strings.Contains(err.Error(), "horse") {
		t.Errorf("error %q leaks the password", err)
	}

	parsed.Data[len(parsed.Data)-1] ^= 1
	if _, err := parsed.Open(password); !errors.Is(err, ErrWrongPassword) {
		t.Errorf("tampered data: err = %v, want ErrWrongPassword", err)
	}
}

func TestKDFParamsValidate(t *testing.T) {
	for _, tc := range []struct {
		p  KDFParams
		ok bool
	}{
		{DefaultKDF, true},
		{TestKDF, true},
		{KDFParams{N: 2, R: 1, P: 1}, true},
		{KDFParams{N: 1 << 20, R: 8, P: 1}, true}, // exactly 1 GiB
		{KDFParams{N: 1 << 14, R: 32, P: 16}, true},
		{KDFParams{N: 0, R: 8, P: 1}, false},
		{KDFParams{N: 1, R: 8, P: 1}, false},
		{KDFParams{N: 3, R: 8, P: 1}, false},
		{KDFParams{N: 1<<17 + 1, R: 8, P: 1}, false},
		{KDFParams{N: -1 << 17, R: 8, P: 1}, false},
		{KDFParams{N: 1 << 21, R: 1, P: 1}, false},
		{KDFParams{N: 1 << 10, R: 0, P: 1}, false},
		{KDFParams{N: 1 << 10, R: 33, P: 1}, false},
		{KDFParams{N: 1 << 10, R: 8, P: 0}, false},
		{KDFParams{N: 1 << 10, R: 8, P: 17}, false},
		{KDFParams{N: 1 << 20, R: 8, P: 2}, false}, // 2 GiB
		{KDFParams{N: 1 << 20, R: 16, P: 1}, false},
	} {
		if err := tc.p.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: err = %v, want ok=%v", tc.p, err, tc.ok)
		}
	}
	if _, err := NewKeyFile([]byte("pw"), testKey(), KDFParams{N: 3, R: 8, P: 1}, "", ""); err == nil {
		t.Error("NewKeyFile accepted invalid params")
	}
}

func TestParseKeyFileRejects(t *testing.T) {
	kf, err := NewKeyFile([]byte("pw"), testKey(), TestKDF, "", "")
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(m map[string]any){
		"version 0":    func(m map[string]any) { m["version"] = 0 },
		"version 2":    func(m map[string]any) { m["version"] = 2 },
		"kdf argon2":   func(m map[string]any) { m["kdf"] = "argon2id" },
		"no kdf":       func(m map[string]any) { delete(m, "kdf") },
		"huge N":       func(m map[string]any) { m["params"] = map[string]int{"n": 1 << 30, "r": 8, "p": 1} },
		"huge memory":  func(m map[string]any) { m["params"] = map[string]int{"n": 1 << 20, "r": 32, "p": 16} },
		"no params":    func(m map[string]any) { delete(m, "params") },
		"short salt":   func(m map[string]any) { m["salt"] = "AAAA" },
		"no salt":      func(m map[string]any) { delete(m, "salt") },
		"short data":   func(m map[string]any) { m["data"] = "AAAA" },
		"no data":      func(m map[string]any) { delete(m, "data") },
		"salt not b64": func(m map[string]any) { m["salt"] = "!!!!" },
	} {
		data, _ := kf.Marshal()
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		data, _ = json.Marshal(m)
		if _, err := ParseKeyFile(data); err == nil {
			t.Errorf("%s: ParseKeyFile accepted %s", name, data)
		}
	}
	for _, bad := range []string{"", "null", "[]", "{", `{"version":1}`} {
		if _, err := ParseKeyFile([]byte(bad)); err == nil {
			t.Errorf("ParseKeyFile accepted %q", bad)
		}
	}
	// Open validates too, for key files built by hand.
	hand := *kf
	hand.Params = KDFParams{N: 1 << 30, R: 8, P: 1}
	if _, err := hand.Open([]byte("pw")); err == nil || errors.Is(err, ErrWrongPassword) {
		t.Errorf("Open with out-of-cap params: err = %v", err)
	}
}

// BenchmarkDefaultKDF measures one key derivation at DefaultKDF, the delay a
// user sees when opening a repository.
func BenchmarkDefaultKDF(b *testing.B) {
	kf, err := NewKeyFile([]byte("pw"), testKey(), DefaultKDF, "", "")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := kf.Open([]byte("pw")); err != nil {
			b.Fatal(err)
		}
	}
}
