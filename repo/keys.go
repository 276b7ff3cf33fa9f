package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/bk-backup/bk/crypt"
	"github.com/bk-backup/bk/store"
)

// maxKeyFileSize caps a key file read from the store.
const maxKeyFileSize = 64 << 10

// KeyInfo describes one key file.
type KeyInfo struct {
	Name     string    `json:"name"`
	Created  time.Time `json:"created"`
	Host     string    `json:"host,omitempty"`
	Username string    `json:"username,omitempty"`
	Current  bool      `json:"current"`
}

// openKey tries password against every key file.
func openKey(ctx context.Context, be store.Backend, password []byte) (*crypt.MasterKey, string, error) {
	names, err := listNames(ctx, be, store.KeyFile)
	if err != nil {
		return nil, "", fmt.Errorf("list keys: %w", err)
	}
	if len(names) == 0 {
		return nil, "", corrupt(nil, "repository %s has no key files", be.Location())
	}
	var bad []string
	for _, name := range names {
		kf, err := readKeyFile(ctx, be, name)
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		mk, err := kf.Open(password)
		if err == nil {
			return mk, name, nil
		}
		if !errors.Is(err, crypt.ErrWrongPassword) {
			bad = append(bad, fmt.Sprintf("key %s: %v", name[:8], err))
		}
	}
	if len(bad) == len(names) {
		return nil, "", corrupt(nil, "no readable key file (%s)", bad[0])
	}
	return nil, "", fmt.Errorf("the password opens none of the %d keys: %w", len(names), crypt.ErrWrongPassword)
}

func readKeyFile(ctx context.Context, be store.Backend, name string) (*crypt.KeyFile, error) {
	h := store.Handle{Type: store.KeyFile, Name: name}
	fi, err := be.Stat(ctx, h)
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", h, err)
	}
	if fi.Size > maxKeyFileSize {
		return nil, corrupt(nil, "%s: %d bytes", h, fi.Size)
	}
	data, err := store.ReadAll(ctx, be, h)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", h, err)
	}
	if crypt.Hash(data).String() != name {
		return nil, corrupt(nil, "%s: content does not match its name", h)
	}
	kf, err := crypt.ParseKeyFile(data)
	if err != nil {
		return nil, corrupt(err, "%s", h)
	}
	return kf, nil
}

func listNames(ctx context.Context, be store.Backend, t store.FileType) ([]string, error) {
	var names []string
	err := be.List(ctx, t, func(fi store.FileInfo) error {
		names = append(names, fi.Name)
		return nil
	})
	sort.Strings(names)
	return names, err
}

// saveKey wraps the master key under password and stores the key file.
func (r *Repository) saveKey(ctx context.Context, password []byte, p crypt.KDFParams) (string, error) {
	if len(password) == 0 {
		return "", errors.New("empty password")
	}
	kf, err := crypt.NewKeyFile(password, r.key, p, r.host, r.user)
	if err != nil {
		return "", err
	}
	data, err := kf.Marshal()
	if err != nil {
		return "", err
	}
	name := crypt.Hash(data).String()
	if err := r.be.Put(ctx, store.Handle{Type: store.KeyFile, Name: name}, bytes.NewReader(data), int64(len(data))); err != nil {
		return "", fmt.Errorf("save key: %w", err)
	}
	return name, nil
}

// Keys lists the key files.
func (r *Repository) Keys(ctx context.Context) ([]KeyInfo, error) {
	names, err := listNames(ctx, r.be, store.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	out := make([]KeyInfo, 0, len(names))
	for _, name := range names {
		kf, err := readKeyFile(ctx, r.be, name)
		if err != nil {
			return nil, err
		}
		out = append(out, KeyInfo{Name: name, Created: kf.Created, Host: kf.Host,
			Username: kf.Username, Current: name == r.keyName})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// AddKey adds a key file for another password and returns its name.
func (r *Repository) AddKey(ctx context.Context, password []byte, p crypt.KDFParams) (string, error) {
	return r.saveKey(ctx, password, p)
}

// FindKey resolves a unique prefix of a key name.
func (r *Repository) FindKey(ctx context.Context, prefix string) (string, error) {
	names, err := listNames(ctx, r.be, store.KeyFile)
	if err != nil {
		return "", fmt.Errorf("list keys: %w", err)
	}
	return uniquePrefix("key", prefix, names)
}

// RemoveKey deletes a key file. It refuses the key in use and the last key.
func (r *Repository) RemoveKey(ctx context.Context, name string) error {
	names, err := listNames(ctx, r.be, store.KeyFile)
	if err != nil {
		return fmt.Errorf("list keys: %w", err)
	}
	if name == r.keyName {
		return errors.New("refusing to remove the key in use; open the repository with another password to remove it")
	}
	if len(names) <= 1 {
		return errors.New("refusing to remove the last key")
	}
	if err := r.be.Delete(ctx, store.Handle{Type: store.KeyFile, Name: name}); err != nil {
		return fmt.Errorf("remove key %s: %w", name, err)
	}
	return nil
}

// ChangePassword replaces the key in use by one for newPassword. The new key
// is stored before the old one is removed, so a crash leaves both working.
func (r *Repository) ChangePassword(ctx context.Context, newPassword []byte, p crypt.KDFParams) (string, error) {
	name, err := r.saveKey(ctx, newPassword, p)
	if err != nil {
		return "", err
	}
	old := r.keyName
	r.keyName = name
	if err := r.be.Delete(ctx, store.Handle{Type: store.KeyFile, Name: old}); err != nil {
		return name, fmt.Errorf("new key %s saved, but removing the old key %s failed: %w", name[:8], old[:8], err)
	}
	return name, nil
}

// uniquePrefix finds the one name starting with prefix.
func uniquePrefix(what, prefix string, names []string) (string, error) {
	if prefix == "" {
		return "", fmt.Errorf("empty %s ID", what)
	}
	var found []string
	for _, n := range names {
		if len(n) >= len(prefix) && n[:len(prefix)] == prefix {
			found = append(found, n)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no %s matches %q: %w", what, prefix, ErrNoMatch)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%s ID %q is ambiguous (%d matches); give more characters", what, prefix, len(found))
}
