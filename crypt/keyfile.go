package crypt

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/scrypt"
)

// Key file format constants. Part of the on-disk format; must not change.
const (
	keyFileVersion = 1
	kdfScrypt      = "scrypt"
	keyFileAD      = "bk key v1"
)

// KDFParams are the scrypt cost parameters of a key file.
type KDFParams struct {
	N int `json:"n"` // CPU/memory cost, a power of two
	R int `json:"r"` // block size
	P int `json:"p"` // parallelism
}

// DefaultKDF is the scrypt cost for new key files: N=2^16, r=8, p=1, as
// kopia uses. It needs 64 MiB and takes 0.2-0.4 s per derivation on the
// 2-core development machine (N=2^17 doubled both, and the time was paid
// by every command, timers included). Existing key files keep the cost
// they were written with; `bk key add` writes new ones with this cost.
var DefaultKDF = KDFParams{N: 1 << 16, R: 8, P: 1}

// TestKDF is a cheap scrypt cost for tests only. It offers no protection.
var TestKDF = KDFParams{N: 1 << 10, R: 8, P: 1}

// Caps on KDF parameters read from untrusted key files.
const (
	maxKDFN      = 1 << 20
	maxKDFR      = 32
	maxKDFP      = 16
	maxKDFMemory = 1 << 30 // 128*N*R*P bytes
)

// Validate reports whether p is within the caps bk accepts: N a power of two
// with 2 <= N <= 2^20, 1 <= R <= 32, 1 <= P <= 16, and 128*N*R*P <= 1 GiB.
// Key files are untrusted input, so the caps bound the memory and time a
// hostile repository can make bk spend.
func (p KDFParams) Validate() error {
	switch {
	case p.N < 2 || p.N > maxKDFN || p.N&(p.N-1) != 0:
		return fmt.Errorf("scrypt N=%d: want a power of two in [2, %d]", p.N, maxKDFN)
	case p.R < 1 || p.R > maxKDFR:
		return fmt.Errorf("scrypt r=%d: want 1 to %d", p.R, maxKDFR)
	case p.P < 1 || p.P > maxKDFP:
		return fmt.Errorf("scrypt p=%d: want 1 to %d", p.P, maxKDFP)
	case 128*uint64(p.N)*uint64(p.R)*uint64(p.P) > maxKDFMemory:
		return fmt.Errorf("scrypt N=%d r=%d p=%d: 128*N*r*p exceeds %d bytes", p.N, p.R, p.P, maxKDFMemory)
	}
	return nil
}

// KeyFile holds a master key encrypted under a key derived from a password.
// A repository may have several, one per password.
type KeyFile struct {
	Version  int       `json:"version"` // 1
	Created  time.Time `json:"created"`
	Host     string    `json:"host,omitempty"`
	Username string    `json:"username,omitempty"`
	KDF      string    `json:"kdf"` // "scrypt"
	Params   KDFParams `json:"params"`
	Salt     []byte    `json:"salt"` // SaltSize bytes
	// Data is nonce (12 bytes) || AES-256-GCM(kek, JSON(MasterKey), ad "bk key v1")
	// where kek = scrypt(password, Salt, Params), 32 bytes.
	Data []byte `json:"data"`
}

// NewKeyFile encrypts mk under password with scrypt cost p, recording host
// and user for display.
func NewKeyFile(password []byte, mk *MasterKey, p KDFParams, host, user string) (*KeyFile, error) {
	var salt [SaltSize]byte
	var nonce [gcmNonceSize]byte
	if _, err := rand.Read(salt[:]); err != nil {
		return nil, fmt.Errorf("new key file: %w", err)
	}
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("new key file: %w", err)
	}
	return newKeyFile(password, mk, p, host, user, time.Now(), salt, nonce)
}

func newKeyFile(password []byte, mk *MasterKey, p KDFParams, host, user string, created time.Time, salt [SaltSize]byte, nonce [gcmNonceSize]byte) (*KeyFile, error) {
	kf := &KeyFile{
		Version:  keyFileVersion,
		Created:  created,
		Host:     host,
		Username: user,
		KDF:      kdfScrypt,
		Params:   p,
		Salt:     salt[:],
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("new key file: %w", err)
	}
	aead, err := kf.kek(password)
	if err != nil {
		return nil, fmt.Errorf("new key file: %w", err)
	}
	pt, err := json.Marshal(mk)
	if err != nil {
		return nil, fmt.Errorf("new key file: encode master key: %w", err)
	}
	kf.Data = aead.Seal(append([]byte(nil), nonce[:]...), nonce[:], pt, []byte(keyFileAD))
	clear(pt)
	return kf, nil
}

// ParseKeyFile decodes a key file and validates its version, KDF name,
// parameter caps and field sizes. It does not need the password.
func ParseKeyFile(data []byte) (*KeyFile, error) {
	var kf KeyFile
	if err := json.Unmarshal(data, &kf); err != nil {
		return nil, fmt.Errorf("parse key file: %w", err)
	}
	if err := kf.validate(); err != nil {
		return nil, fmt.Errorf("parse key file: %w", err)
	}
	return &kf, nil
}

func (kf *KeyFile) validate() error {
	switch {
	case kf.Version != keyFileVersion:
		return fmt.Errorf("unsupported version %d (want %d)", kf.Version, keyFileVersion)
	case kf.KDF != kdfScrypt:
		return fmt.Errorf("unsupported kdf %q (want %q)", kf.KDF, kdfScrypt)
	case len(kf.Salt) != SaltSize:
		return fmt.Errorf("salt has %d bytes, want %d", len(kf.Salt), SaltSize)
	case len(kf.Data) < gcmNonceSize+Overhead:
		return fmt.Errorf("data has %d bytes, want at least %d", len(kf.Data), gcmNonceSize+Overhead)
	}
	return kf.Params.Validate()
}

// Marshal encodes the key file as indented JSON.
func (kf *KeyFile) Marshal() ([]byte, error) {
	data, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("marshal key file: %w", err)
	}
	return data, nil
}

// Open decrypts the master key with password. A wrong password, or a key file
// modified since it was written, yields an error matching ErrWrongPassword.
func (kf *KeyFile) Open(password []byte) (*MasterKey, error) {
	if err := kf.validate(); err != nil {
		return nil, fmt.Errorf("open key file: %w", err)
	}
	aead, err := kf.kek(password)
	if err != nil {
		return nil, fmt.Errorf("open key file: %w", err)
	}
	pt, err := aead.Open(nil, kf.Data[:gcmNonceSize], kf.Data[gcmNonceSize:], []byte(keyFileAD))
	if err != nil {
		return nil, fmt.Errorf("open key file: %w", ErrWrongPassword)
	}
	defer clear(pt)
	var mk MasterKey
	if err := json.Unmarshal(pt, &mk); err != nil {
		return nil, errors.New("open key file: decrypted master key is malformed")
	}
	return &mk, nil
}

// kek derives the key-encryption AEAD from password. kf.Salt and kf.Params
// must be valid.
func (kf *KeyFile) kek(password []byte) (cipher.AEAD, error) {
	key, err := scrypt.Key(password, kf.Salt, kf.Params.N, kf.Params.R, kf.Params.P, KeySize)
	if err != nil {
		return nil, fmt.Errorf("scrypt: %w", err)
	}
	defer clear(key)
	return newGCM(key)
}
