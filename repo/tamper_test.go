package repo_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/repo"
	"github.com/bk-backup/bk/repo/index"
	"github.com/bk-backup/bk/repo/pack"
	"github.com/bk-backup/bk/repo/repotest"
	"github.com/bk-backup/bk/store"
	"github.com/bk-backup/bk/store/mem"
)

// tamperBase is a repository with one snapshot of 64 KiB of random data, cut
// into 4 KiB data blobs that share one pack, and a tree blob in another pack.
// Each test case corrupts a copy of it.
type tamperBase struct {
	be   store.Backend
	snap *repo.Snapshot
	data []byte
	// The data and tree blobs, ordered by pack and offset.
	dataBlobs, treeBlobs []index.Location
}

func newTamperBase(t *testing.T) *tamperBase {
	t.Helper()
	be := mem.New()
	r := initRepo(t, be, smallChunker())
	data := randomData(1, 64<<10)
	s := snap(t, r, "tamper", data)
	b := &tamperBase{be: be, snap: s, data: data,
		dataBlobs: blobsOf(t, r, pack.DataBlob), treeBlobs: blobsOf(t, r, pack.TreeBlob)}
	if len(b.dataBlobs) < 8 || len(b.treeBlobs) != 1 {
		t.Fatalf("setup: %d data blobs and %d tree blobs; want at least 8 and 1", len(b.dataBlobs), len(b.treeBlobs))
	}
	if b.dataBlobs[0].Pack.ID != b.dataBlobs[len(b.dataBlobs)-1].Pack.ID {
		t.Fatal("setup: the data blobs span several packs")
	}
	return b
}

// restoreCopy restores the base snapshot from be as a new process would.
func (b *tamperBase) restoreCopy(t *testing.T, be store.Backend) ([]byte, error) {
	t.Helper()
	return restoreErr(repotest.Reopen(t, be), b.snap)
}

// wantBlobError checks that err is corruption reported as a *repo.BlobError
// naming pack and one of blobs.
func wantBlobError(t *testing.T, err error, packID crypt.ID, blobs ...crypt.ID) {
	t.Helper()
	if err == nil {
		t.Fatal("restore succeeded; want an error")
	}
	if !errors.Is(err, repo.ErrCorrupt) {
		t.Errorf("error %q does not match repo.ErrCorrupt", err)
	}
	t.Log(err)
	var be *repo.BlobError
	if !errors.As(err, &be) {
		t.Fatalf("error %q is not a *repo.BlobError", err)
	}
	if be.Pack != packID {
		t.Errorf("BlobError names pack %s, want %s", be.Pack.Short(), packID.Short())
	}
	if len(blobs) == 0 {
		return
	}
	for _, id := range blobs {
		if be.Blob == id {
			return
		}
	}
	t.Errorf("BlobError names blob %s, want one of %v", be.Blob.Short(), blobs)
}

// masterKey opens the master key of be with password (the test password if
// none is given).
func masterKey(t testing.TB, be store.Backend, password ...string) *crypt.MasterKey {
	t.Helper()
	pw := repotest.Password
	if len(password) > 0 {
		pw = password[0]
	}
	for _, h := range handles(t, be, store.KeyFile) {
		kf, err := crypt.ParseKeyFile(read(t, be, h))
		if err != nil {
			continue
		}
		if mk, err := kf.Open([]byte(pw)); err == nil {
			return mk
		}
	}
	t.Fatal("no key file opens with the password")
	return nil
}

// TestTamperBlob flips single bits inside sealed blobs: restore must fail
// with corruption naming the pack and the blob, never return wrong bytes.
func TestTamperBlob(t *testing.T) {
	base := newTamperBase(t)
	last := len(base.dataBlobs) - 1
	for _, tc := range []struct {
		name string
		loc  index.Location
		pos  int64 // offset inside the sealed blob; negative from its end
		bit  int
	}{
		{"first data blob, first byte", base.dataBlobs[0], 0, 0},
		{"first data blob, middle", base.dataBlobs[0], 2000, 5},
		{"first data blob, last tag byte", base.dataBlobs[0], -1, 7},
		{"middle data blob, tag start", base.dataBlobs[last/2], -crypt.Overhead, 3},
		{"last data blob, first byte", base.dataBlobs[last], 0, 1},
		{"last data blob, last byte", base.dataBlobs[last], -1, 0},
		{"tree blob, first byte", base.treeBlobs[0], 0, 0},
		{"tree blob, last byte", base.treeBlobs[0], -1, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := clone(t, base.be)
			pos := tc.pos
			if pos < 0 {
				pos += tc.loc.Entry.Length
			}
			rewrite(t, be, packHandle(tc.loc), flipBit(int(tc.loc.Entry.Offset+pos), tc.bit))
			got, err := base.restoreCopy(t, be)
			wantBlobError(t, err, tc.loc.Pack.ID, tc.loc.Entry.ID)
			if !errors.Is(err, crypt.ErrAuth) {
				t.Errorf("error %q does not match crypt.ErrAuth", err)
			}
			if len(got) > 0 && bytes.Equal(got, base.data) {
				t.Error("a failed restore wrote the whole stream")
			}
		})
	}
}

// TestTamperPackFrame flips bits in the parts of a pack that restore does
// not read: the magic, version, salt, sealed header and trailer. Restore
// reads blobs by the index (which holds a copy of the salt), so it may
// succeed, but then with exactly the stored bytes; the pack header, read by
// pack.ReadHeader as a checker does, and the pack's name must expose the
// damage.
func TestTamperPackFrame(t *testing.T) {
	base := newTamperBase(t)
	loc := base.dataBlobs[0]
	h := packHandle(loc)
	raw := read(t, base.be, h)
	size := len(raw)
	hl := int(binary.LittleEndian.Uint32(raw[size-pack.TrailerSize:]))
	hdr := size - pack.TrailerSize - hl
	mk := masterKey(t, base.be)
	for _, tc := range []struct {
		name string
		pos  int
		bit  int
	}{
		{"magic", 0, 0},
		{"version", 4, 1},
		{"salt first byte", 5, 0},
		{"salt last byte", pack.PreambleSize - 1, 7},
		{"header first byte", hdr, 2},
		{"header tag", size - pack.TrailerSize - 1, 4},
		{"trailer low byte", size - pack.TrailerSize, 0},
		{"trailer high bit", size - 1, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := clone(t, base.be)
			rewrite(t, be, h, flipBit(tc.pos, tc.bit))
			damaged := read(t, be, h)
			if crypt.Hash(damaged).String() == h.Name {
				t.Error("the damaged pack still matches its name")
			}
			_, _, err := pack.ReadHeader(bytes.NewReader(damaged), int64(len(damaged)), mk.Subkey)
			if !errors.Is(err, pack.ErrCorrupt) && !errors.Is(err, crypt.ErrAuth) {
				t.Errorf("ReadHeader: got %v, want pack.ErrCorrupt or crypt.ErrAuth", err)
			}
			got, err := base.restoreCopy(t, be)
			switch {
			case err != nil && !errors.Is(err, repo.ErrCorrupt):
				t.Errorf("restore: %v; want success or repo.ErrCorrupt", err)
			case err == nil && !bytes.Equal(got, base.data):
				t.Error("restore succeeded with wrong bytes")
			case err == nil:
				t.Log("restore is unaffected: it reads only the indexed blobs")
			}
		})
	}
}

// TestTruncatePack cuts a data pack at several lengths. A cut into a blob
// must fail restore as corruption naming the pack; a cut that only removes
// the header or trailer leaves every indexed blob readable.
func TestTruncatePack(t *testing.T) {
	base := newTamperBase(t)
	first, last := base.dataBlobs[0], base.dataBlobs[len(base.dataBlobs)-1]
	h := packHandle(first)
	size := int(first.Pack.Size)
	blobsEnd := int(last.Entry.Offset + last.Entry.Length)
	for _, tc := range []struct {
		name     string
		keep     int
		mustFail bool
	}{
		{"drop the last byte", size - 1, false},
		{"drop the trailer", size - pack.TrailerSize, false},
		{"drop header and trailer", blobsEnd, false},
		{"cut the last blob's tag", blobsEnd - 1, true},
		{"cut the last blob in half", int(last.Entry.Offset + last.Entry.Length/2), true},
		{"keep the first blob only", int(first.Entry.Offset + first.Entry.Length), true},
		{"keep the preamble only", pack.PreambleSize, true},
		{"empty", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := clone(t, base.be)
			rewrite(t, be, h, truncateTo(tc.keep))
			got, err := base.restoreCopy(t, be)
			if tc.mustFail {
				wantBlobError(t, err, first.Pack.ID)
				return
			}
			if err != nil {
				t.Fatalf("restore: %v; every indexed blob is intact", err)
			}
			if !bytes.Equal(got, base.data) {
				t.Fatal("restore succeeded with wrong bytes")
			}
		})
	}
}

// TestSwapBlobs swaps two sealed blobs of the same length inside a pack.
// Each blob is bound to its ID and offset, so restore must fail.
func TestSwapBlobs(t *testing.T) {
	base := newTamperBase(t)
	var a, b index.Location
	found := false
	for i := 0; i < len(base.dataBlobs) && !found; i++ {
		for j := i + 1; j < len(base.dataBlobs); j++ {
			if base.dataBlobs[i].Entry.Length == base.dataBlobs[j].Entry.Length {
				a, b, found = base.dataBlobs[i], base.dataBlobs[j], true
				break
			}
		}
	}
	if !found {
		t.Fatal("setup: no two data blobs have the same length")
	}
	be := clone(t, base.be)
	rewrite(t, be, packHandle(a), func(p []byte) []byte {
		x := p[a.Entry.Offset : a.Entry.Offset+a.Entry.Length]
		y := p[b.Entry.Offset : b.Entry.Offset+b.Entry.Length]
		tmp := bytes.Clone(x)
		copy(x, y)
		copy(y, tmp)
		return p
	})
	_, err := base.restoreCopy(t, be)
	wantBlobError(t, err, a.Pack.ID, a.Entry.ID, b.Entry.ID)
	if !errors.Is(err, crypt.ErrAuth) {
		t.Errorf("error %q does not match crypt.ErrAuth", err)
	}
}

// TestTamperSealedFiles damages index, snapshot and config files, either in
// place (the name no longer matches) or stored under the hash of the damaged
// bytes (only authentication can tell). Opening, loading the index or
// loading the snapshot must fail with repo.ErrCorrupt.
func TestTamperSealedFiles(t *testing.T) {
	base := newTamperBase(t)
	mutations := []struct {
		name string
		fn   func([]byte) []byte
	}{
		{"flip version byte", flipBit(0, 0)},
		{"flip salt", flipBit(1, 4)},
		{"flip ciphertext", flipBit(crypt.SaltSize+3, 2)},
		{"flip tag", flipBit(-1, 7)},
		{"drop last byte", truncateTo(-1)},
		{"keep version and salt", truncateTo(1 + crypt.SaltSize)},
		{"empty", truncateTo(0)},
	}
	ctx := context.Background()
	for _, ft := range []store.FileType{store.ConfigFile, store.IndexFile, store.SnapshotFile} {
		for _, m := range mutations {
			for _, renamed := range []bool{false, true} {
				if ft == store.ConfigFile && !renamed {
					continue // the config has no name to check
				}
				name := fmt.Sprintf("%s/%s/renamed=%v", ft, m.name, renamed)
				t.Run(name, func(t *testing.T) {
					be := clone(t, base.be)
					h := store.Handle{Type: ft}
					if ft != store.ConfigFile {
						h = handles(t, be, ft)[0]
					}
					if renamed {
						rename(t, be, h, m.fn)
					} else {
						rewrite(t, be, h, m.fn)
					}
					r, err := repo.Open(ctx, be, []byte(repotest.Password), repo.OpenOptions{})
					if ft == store.ConfigFile {
						if !errors.Is(err, repo.ErrCorrupt) {
							t.Fatalf("open: got %v, want repo.ErrCorrupt", err)
						}
						t.Log(err)
						return
					}
					if err != nil {
						t.Fatalf("open: %v", err)
					}
					defer r.Close()
					switch ft {
					case store.IndexFile:
						err = r.LoadIndex(ctx)
					case store.SnapshotFile:
						if renamed {
							_, err = r.Snapshots(ctx, repo.Filter{})
						} else {
							_, err = r.LoadSnapshot(ctx, base.snap.ID)
						}
					}
					if !errors.Is(err, repo.ErrCorrupt) {
						t.Fatalf("got %v, want repo.ErrCorrupt", err)
					}
					t.Log(err)
				})
			}
		}
	}
}

// TestSealedFileKinds plants a well-sealed file of one kind where another
// kind is expected: the associated data binds the kind, so it must fail.
func TestSealedFileKinds(t *testing.T) {
	base := newTamperBase(t)
	ctx := context.Background()
	idx := handles(t, base.be, store.IndexFile)[0]
	sn := handles(t, base.be, store.SnapshotFile)[0]

	t.Run("index as snapshot", func(t *testing.T) {
		be := clone(t, base.be)
		put(t, be, store.Handle{Type: store.SnapshotFile, Name: idx.Name}, read(t, be, idx))
		r := repotest.Reopen(t, be)
		_, err := r.LoadSnapshot(ctx, crypt.ID(mustParseID(t, idx.Name)))
		if !errors.Is(err, repo.ErrCorrupt) || !errors.Is(err, crypt.ErrAuth) {
			t.Fatalf("got %v, want repo.ErrCorrupt and crypt.ErrAuth", err)
		}
	})
	t.Run("snapshot as index", func(t *testing.T) {
		be := clone(t, base.be)
		put(t, be, store.Handle{Type: store.IndexFile, Name: sn.Name}, read(t, be, sn))
		r := repotest.Reopen(t, be)
		if err := r.LoadIndex(ctx); !errors.Is(err, repo.ErrCorrupt) || !errors.Is(err, crypt.ErrAuth) {
			t.Fatalf("got %v, want repo.ErrCorrupt and crypt.ErrAuth", err)
		}
	})
	t.Run("snapshot as config", func(t *testing.T) {
		be := clone(t, base.be)
		rewrite(t, be, store.Handle{Type: store.ConfigFile}, func([]byte) []byte { return read(t, be, sn) })
		_, err := repo.Open(ctx, be, []byte(repotest.Password), repo.OpenOptions{})
		if !errors.Is(err, repo.ErrCorrupt) || !errors.Is(err, crypt.ErrAuth) {
			t.Fatalf("got %v, want repo.ErrCorrupt and crypt.ErrAuth", err)
		}
	})
}

func mustParseID(t testing.TB, s string) crypt.ID {
	t.Helper()
	id, err := crypt.ParseID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestForgedConfig seals configs with the right key but wrong content: a
// newer format must be refused as such, anything else as corrupt.
func TestForgedConfig(t *testing.T) {
	base := newTamperBase(t)
	ctx := context.Background()
	mk := masterKey(t, base.be)
	r := repotest.Reopen(t, base.be)
	good := r.Config()
	for _, tc := range []struct {
		name   string
		plain  func() []byte
		target error
	}{
		{"newer version", func() []byte { c := good; c.Version = repo.FormatVersion + 1; return rawJSON(t, c) }, repo.ErrNewerFormat},
		{"version 0", func() []byte { c := good; c.Version = 0; return rawJSON(t, c) }, repo.ErrCorrupt},
		{"unknown hash", func() []byte { c := good; c.Hash = "sha1"; return rawJSON(t, c) }, repo.ErrCorrupt},
		{"unknown cipher", func() []byte { c := good; c.Cipher = "rot13"; return rawJSON(t, c) }, repo.ErrCorrupt},
		{"tiny packs", func() []byte { c := good; c.PackSize = 4096; return rawJSON(t, c) }, repo.ErrCorrupt},
		{"bad chunker", func() []byte { c := good; c.Chunker.MaxSize = c.Chunker.MinSize; return rawJSON(t, c) }, repo.ErrCorrupt},
		{"not JSON", func() []byte { return []byte{0, '{'} }, repo.ErrCorrupt},
		{"no encoding byte", func() []byte { return nil }, repo.ErrCorrupt},
		{"unknown encoding", func() []byte { return append([]byte{7}, rawJSON(t, good)[1:]...) }, repo.ErrCorrupt},
		{"bad zstd", func() []byte { return []byte{1, 0x28, 0xb5, 0x2f, 0xfd, 0xff} }, repo.ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := clone(t, base.be)
			sealed, err := mk.SealFile("config", tc.plain())
			if err != nil {
				t.Fatal(err)
			}
			rewrite(t, be, store.Handle{Type: store.ConfigFile}, func([]byte) []byte { return sealed })
			_, err = repo.Open(ctx, be, []byte(repotest.Password), repo.OpenOptions{})
			if !errors.Is(err, tc.target) {
				t.Fatalf("got %v, want %v", err, tc.target)
			}
		})
	}
}

// rawJSON returns the plaintext of a raw-encoded sealed file holding v.
func rawJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{0}, b...)
}

// TestTamperKeyFile damages key files. A key file that does not match its
// name, or does not parse, is unreadable (repo.ErrCorrupt when no key is
// readable); one whose encrypted part was altered looks like a wrong
// password. Another intact key still opens the repository.
func TestTamperKeyFile(t *testing.T) {
	base := newTamperBase(t)
	ctx := context.Background()
	open := func(be store.Backend, pw string) error {
		r, err := repo.Open(ctx, be, []byte(pw), repo.OpenOptions{})
		if err == nil {
			r.Close()
		}
		return err
	}
	if err := open(base.be, "wrong"); !errors.Is(err, crypt.ErrWrongPassword) || errors.Is(err, repo.ErrCorrupt) {
		t.Fatalf("wrong password on an intact repository: got %v, want crypt.ErrWrongPassword only", err)
	}

	field := func(name string, delta int) func([]byte) []byte {
		return func(b []byte) []byte {
			i := bytes.Index(b, []byte(`"`+name+`": `))
			if i < 0 {
				t.Fatalf("key file has no field %q", name)
			}
			b[i+len(name)+5+delta] ^= 1
			return b
		}
	}
	for _, tc := range []struct {
		name    string
		renamed bool
		fn      func([]byte) []byte
		target  []error // any of
	}{
		{"in place: flip a bit", false, flipBit(20, 0), []error{repo.ErrCorrupt}},
		{"in place: drop last byte", false, truncateTo(-1), []error{repo.ErrCorrupt}},
		{"renamed: empty", true, truncateTo(0), []error{repo.ErrCorrupt}},
		{"renamed: not JSON", true, truncateTo(-2), []error{repo.ErrCorrupt}},
		{"renamed: data", true, field("data", 10), []error{repo.ErrCorrupt, crypt.ErrWrongPassword}},
		{"renamed: data end", true, field("data", 40), []error{repo.ErrCorrupt, crypt.ErrWrongPassword}},
		{"renamed: salt", true, field("salt", 3), []error{repo.ErrCorrupt, crypt.ErrWrongPassword}},
		{"renamed: kdf", true, field("kdf", 1), []error{repo.ErrCorrupt}},
		{"renamed: version", true, field("version", 0), []error{repo.ErrCorrupt}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := clone(t, base.be)
			h := handles(t, be, store.KeyFile)[0]
			if tc.renamed {
				rename(t, be, h, tc.fn)
			} else {
				rewrite(t, be, h, tc.fn)
			}
			err := open(be, repotest.Password)
			t.Log(err)
			for _, target := range tc.target {
				if errors.Is(err, target) {
					return
				}
			}
			t.Fatalf("open: got %v, want one of %v", err, tc.target)
		})
	}

	t.Run("second key survives", func(t *testing.T) {
		be := clone(t, base.be)
		bad := handles(t, be, store.KeyFile)[0]
		r := repotest.Reopen(t, be)
		if _, err := r.AddKey(ctx, []byte("second"), crypt.TestKDF); err != nil {
			t.Fatal(err)
		}
		rewrite(t, be, bad, flipBit(30, 1))
		if err := open(be, "second"); err != nil {
			t.Fatalf("open with the intact second key: %v", err)
		}
		if err := open(be, repotest.Password); !errors.Is(err, crypt.ErrWrongPassword) {
			t.Fatalf("open with the damaged key's password: got %v, want crypt.ErrWrongPassword", err)
		}
	})
}
