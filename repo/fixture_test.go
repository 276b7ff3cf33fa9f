package repo_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bk-backup/bk/chunk"
	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo"
	"github.com/bk-backup/bk/repo/pack"
	"github.com/bk-backup/bk/store"
	"github.com/bk-backup/bk/store/local"
)

var updateFixture = flag.Bool("update-fixture", false, "regenerate the fixture repository in testdata/v1 with the current code")

// The fixture repository of format version 1. It was written once by
// TestFixtureV1 -update-fixture; every later bk must open it, read its
// config and restore its snapshots byte for byte. Never regenerate it to
// make the test pass: a failure means bk no longer reads version 1.
const fixtureDir = "testdata/v1"

// fixtureChunker cuts the small fixture streams into several chunks each.
func fixtureChunker() chunk.Params {
	return chunk.Params{Algorithm: chunk.AlgorithmRabin, Polynomial: testPol,
		MinSize: 512, MaxSize: 8 << 10, AverageBits: 11}
}

// fixtureText returns n bytes of dump-like text, fixed forever by ChaCha8
// (math/rand/v2 promises its output does not change).
func fixtureText(seed byte, n int) []byte {
	var s [32]byte
	s[0] = seed
	rng := rand.New(rand.NewChaCha8(s))
	words := []string{"INSERT INTO", "accounts", "VALUES", "(", ")", ",", "'alice'", "'bob'", "NULL", "\n", "2026-11-22", "42", "3.14"}
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[rng.IntN(len(words))])
		b.WriteByte(' ')
		b.WriteByte(byte('a' + rng.IntN(26)))
	}
	return b.Bytes()[:n]
}

// fixtureStreams are the snapshots of the fixture, with the SHA-256 of
// their content pinned so that a change of the generator is caught.
var fixtureStreams = []struct {
	name   string
	time   time.Time
	data   func() []byte
	sha256 string
}{
	{"empty", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), func() []byte { return nil },
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
	{"text", time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC), func() []byte { return fixtureText(1, 24<<10) },
		"c21b39daa0005891662f58babea11144e0faaeaa69fc57c93b47b150086ce20a"},
	{"text-edited", time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC), func() []byte {
		b := fixtureText(1, 24<<10)
		copy(b[10<<10:], "-- an edit in the middle --")
		return append(b, randomData(2, 2<<10)...)
	}, "de462dbee3571fade1d4a5c6dc955407cd52aaf807ba3c1c8a9d1bc6ee68f37f"},
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestFixtureStreams(t *testing.T) {
	for _, fs := range fixtureStreams {
		if got := sha256Hex(fs.data()); got != fs.sha256 {
			t.Errorf("fixture stream %q changed: sha256 %s, want %s", fs.name, got, fs.sha256)
		}
	}
}

// writeFixture creates the fixture repository in dir.
func writeFixture(t *testing.T, dir string) {
	t.Helper()
	ctx := context.Background()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	be, err := local.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	const password = "bk fixture v1"
	cp := fixtureChunker()
	r, err := repo.Init(ctx, be, []byte(password), repo.InitOptions{KDF: crypt.TestKDF, PackSize: 1 << 20,
		Chunker: &cp, Host: "fixture", Username: "bk"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, fs := range fixtureStreams {
		_, err := r.SnapshotStream(ctx, bytes.NewReader(fs.data()), repo.SnapshotOptions{Name: fs.name,
			Host: "fixture", Username: "bk", Tags: []string{"fixture"}, Time: fs.time,
			Program: "bk fixture", AllowEmpty: true})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "PASSWORD"), []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// copyFixture copies the fixture to a temporary folder, so that the test
// cannot change it, and recreates the empty folders git does not keep.
func copyFixture(t *testing.T) (dir, password string) {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(fixtureDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(fixtureDir, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	})
	if err != nil {
		t.Fatalf("copy the fixture (regenerate it with -update-fixture only for a new format version): %v", err)
	}
	for _, ft := range store.AllTypes {
		if ft != store.ConfigFile {
			if err := os.MkdirAll(filepath.Join(dst, string(ft)), 0o700); err != nil {
				t.Fatal(err)
			}
		}
	}
	pw, err := os.ReadFile(filepath.Join(dst, "PASSWORD"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dst, "PASSWORD")); err != nil {
		t.Fatal(err)
	}
	return dst, strings.TrimSuffix(string(pw), "\n")
}

// TestFixtureV1 opens the version 1 fixture with the current code, checks
// its config, verifies every file against its name and every pack header,
// and restores every snapshot byte for byte.
func TestFixtureV1(t *testing.T) {
	if *updateFixture {
		writeFixture(t, fixtureDir)
	}
	ctx := context.Background()
	dir, password := copyFixture(t)
	be, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(ctx, be, []byte(password), repo.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	cfg := r.Config()
	if cfg.Version != 1 || cfg.Hash != "blake3-256-keyed" || cfg.Cipher != "aes-256-gcm-subkey-v1" ||
		cfg.Compression != "zstd" || cfg.PackSize != 1<<20 || cfg.Chunker != fixtureChunker() {
		t.Fatalf("fixture config %+v", cfg)
	}

	// Every file matches its name; every pack header parses and agrees
	// with the index.
	for _, ft := range []store.FileType{store.KeyFile, store.SnapshotFile, store.IndexFile, store.PackFile} {
		for _, h := range handles(t, be, ft) {
			if got := crypt.Hash(read(t, be, h)).String(); got != h.Name {
				t.Errorf("%s hashes to %s", h, got)
			}
		}
	}
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	mk := masterKey(t, r.Backend(), password)
	for _, h := range handles(t, be, store.PackFile) {
		p := read(t, be, h)
		_, entries, err := pack.ReadHeader(bytes.NewReader(p), int64(len(p)), mk.Subkey)
		if err != nil {
			t.Fatalf("pack %s: %v", h.Name, err)
		}
		for _, e := range entries {
			l, ok := r.Index().Lookup(e.ID)
			if !ok || l.Pack.ID.String() != h.Name || l.Entry != e {
				t.Errorf("pack %s blob %s: index has %+v", h.Name[:8], e.ID.Short(), l)
			}
		}
	}

	list, err := r.Snapshots(ctx, repo.Filter{Tags: []string{"fixture"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(fixtureStreams) {
		t.Fatalf("%d snapshots, want %d", len(list), len(fixtureStreams))
	}
	for i, fs := range fixtureStreams {
		s := list[i] // oldest first
		if s.Name != fs.name || !s.Time.Equal(fs.time) || s.Host != "fixture" || s.Kind != "stream" {
			t.Errorf("snapshot %d: %+v, want name %q at %s", i, s, fs.name, fs.time)
		}
		var out bytes.Buffer
		if err := r.RestoreStream(ctx, s, &out, nil); err != nil {
			t.Fatalf("restore %q: %v", fs.name, err)
		}
		if got := sha256Hex(out.Bytes()); got != fs.sha256 {
			t.Errorf("restore %q: sha256 %s, want %s", fs.name, got, fs.sha256)
		}
		if s.Size != int64(out.Len()) {
			t.Errorf("snapshot %q records %d bytes, restored %d", fs.name, s.Size, out.Len())
		}
	}
}
