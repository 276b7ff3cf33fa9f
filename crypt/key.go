package crypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"

	"github.com/zeebo/blake3"
)

// ErrAuth means sealed data failed authentication: it is corrupt, truncated,
// was sealed under another key, or was tampered with.
var ErrAuth = errors.New("authentication failed")

// ErrWrongPassword means a password opens no key file.
var ErrWrongPassword = errors.New("wrong password")

// Sizes and constants below are part of the on-disk format; must not change.
const (
	// KeySize is the length in bytes of each half of a MasterKey and of
	// derived subkeys.
	KeySize = 32
	// SaltSize is the length in bytes of a subkey salt.
	SaltSize = 32
	// Overhead is the number of bytes sealing adds: the GCM tag.
	Overhead = 16
	// FileVersion is the version byte that starts every sealed file.
	FileVersion = 1

	subkeyContext = "bk 2026-11 subkey v1"
	fileADPrefix  = "bk file "
	gcmNonceSize  = 12
	fileHeader    = 1 + SaltSize
)

// MasterKey is a repository's secret: one key from which all encryption
// subkeys are derived and one key for the keyed blob IDs. In JSON it is
// {"encrypt":"<base64>","id":"<base64>"}.
type MasterKey struct {
	Encrypt [KeySize]byte
	ID      [KeySize]byte
}

// NewMasterKey returns a master key drawn from crypto/rand.
func NewMasterKey() (*MasterKey, error) {
	var k MasterKey
	if _, err := rand.Read(k.Encrypt[:]); err != nil {
		return nil, fmt.Errorf("new master key: %w", err)
	}
	if _, err := rand.Read(k.ID[:]); err != nil {
		return nil, fmt.Errorf("new master key: %w", err)
	}
	return &k, nil
}

type masterKeyJSON struct {
	Encrypt []byte `json:"encrypt"`
	ID      []byte `json:"id"`
}

// MarshalJSON encodes both keys as base64 strings.
func (k MasterKey) MarshalJSON() ([]byte, error) {
	return json.Marshal(masterKeyJSON{Encrypt: k.Encrypt[:], ID: k.ID[:]})
}

// UnmarshalJSON decodes the form written by MarshalJSON and requires both keys
// to be exactly KeySize bytes.
func (k *MasterKey) UnmarshalJSON(data []byte) error {
	var j masterKeyJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return errors.New("decode master key: malformed JSON") // the input is key material: do not echo it
	}
	if len(j.Encrypt) != KeySize || len(j.ID) != KeySize {
		return fmt.Errorf("decode master key: keys have %d and %d bytes, want %d", len(j.Encrypt), len(j.ID), KeySize)
	}
	copy(k.Encrypt[:], j.Encrypt)
	copy(k.ID[:], j.ID)
	clear(j.Encrypt)
	clear(j.ID)
	return nil
}

// BlobID returns the keyed BLAKE3-256 digest of plaintext under k.ID: the ID
// of a blob with that content.
func (k *MasterKey) BlobID(plaintext []byte) ID {
	h := k.keyedHasher()
	h.Write(plaintext)
	var id ID
	h.Sum(id[:0])
	return id
}

// NewIDHasher returns a streaming keyed BLAKE3-256 hash under k.ID. Its Sum
// over some bytes equals BlobID of those bytes.
func (k *MasterKey) NewIDHasher() hash.Hash { return k.keyedHasher() }

func (k *MasterKey) keyedHasher() *blake3.Hasher {
	h, err := blake3.NewKeyed(k.ID[:])
	if err != nil {
		panic("crypt: blake3.NewKeyed rejected a 32-byte key: " + err.Error())
	}
	return h
}

// NewSalt returns a fresh random salt for Subkey.
func NewSalt() ([SaltSize]byte, error) {
	var salt [SaltSize]byte
	if _, err := rand.Read(salt[:]); err != nil {
		return salt, fmt.Errorf("new salt: %w", err)
	}
	return salt, nil
}

// Sealer encrypts and authenticates with AES-256-GCM under one subkey. It is
// safe for concurrent use. The caller owns the nonce space: it must never
// seal two messages with the same nonce under one Sealer.
type Sealer struct {
	aead cipher.AEAD
}

// Subkey derives the AES-256-GCM sealer for salt:
// BLAKE3-DeriveKey("bk 2026-11 subkey v1", k.Encrypt || salt), 32 bytes.
// The salt must be fresh and random (NewSalt) for each sealed unit.
func (k *MasterKey) Subkey(salt [SaltSize]byte) (*Sealer, error) {
	var material [KeySize + SaltSize]byte
	copy(material[:], k.Encrypt[:])
	copy(material[KeySize:], salt[:])
	var sub [KeySize]byte
	blake3.DeriveKey(subkeyContext, material[:], sub[:])
	clear(material[:])
	aead, err := newGCM(sub[:])
	clear(sub[:])
	if err != nil {
		return nil, fmt.Errorf("derive subkey: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func gcmNonce(n uint64) [gcmNonceSize]byte {
	var b [gcmNonceSize]byte
	binary.BigEndian.PutUint64(b[4:], n)
	return b
}

// Seal encrypts and authenticates plaintext and authenticates ad, appends the
// result (len(plaintext)+Overhead bytes) to dst and returns the updated slice.
// The GCM nonce is 4 zero bytes followed by big-endian nonce. As with
// cipher.AEAD, plaintext and dst may overlap exactly or not at all.
func (s *Sealer) Seal(dst []byte, nonce uint64, plaintext, ad []byte) []byte {
	n := gcmNonce(nonce)
	return s.aead.Seal(dst, n[:], plaintext, ad)
}

// Open authenticates and decrypts sealed, which Seal produced with the same
// nonce and ad, appends the plaintext to dst and returns the updated slice.
// If authentication fails the error matches ErrAuth.
func (s *Sealer) Open(dst []byte, nonce uint64, sealed, ad []byte) ([]byte, error) {
	n := gcmNonce(nonce)
	out, err := s.aead.Open(dst, n[:], sealed, ad)
	if err != nil {
		return nil, fmt.Errorf("open sealed data (nonce %d): %w", nonce, ErrAuth)
	}
	return out, nil
}

// SealFile seals plaintext as a repository file of the given kind ("config",
// "index", "snapshot", "lock", ...):
//
//	byte(FileVersion) || salt || Seal(Subkey(salt), nonce 0, plaintext, "bk file "+kind)
//
// with a fresh random salt.
func (k *MasterKey) SealFile(kind string, plaintext []byte) ([]byte, error) {
	salt, err := NewSalt()
	if err != nil {
		return nil, fmt.Errorf("seal %s file: %w", kind, err)
	}
	return k.sealFile(kind, salt, plaintext)
}

func (k *MasterKey) sealFile(kind string, salt [SaltSize]byte, plaintext []byte) ([]byte, error) {
	s, err := k.Subkey(salt)
	if err != nil {
		return nil, fmt.Errorf("seal %s file: %w", kind, err)
	}
	out := make([]byte, fileHeader, fileHeader+len(plaintext)+Overhead)
	out[0] = FileVersion
	copy(out[1:], salt[:])
	return s.Seal(out, 0, plaintext, []byte(fileADPrefix+kind)), nil
}

// OpenFile opens data written by SealFile with the same kind. Truncated data,
// an unknown version byte, a different kind, another key or any modified bit
// all yield an error matching ErrAuth.
func (k *MasterKey) OpenFile(kind string, data []byte) ([]byte, error) {
	if len(data) < fileHeader+Overhead {
		return nil, fmt.Errorf("open %s file: %d bytes is shorter than the minimum %d: %w", kind, len(data), fileHeader+Overhead, ErrAuth)
	}
	if data[0] != FileVersion {
		return nil, fmt.Errorf("open %s file: unknown format version %d (want %d): %w", kind, data[0], FileVersion, ErrAuth)
	}
	s, err := k.Subkey([SaltSize]byte(data[1:fileHeader]))
	if err != nil {
		return nil, fmt.Errorf("open %s file: %w", kind, err)
	}
	pt, err := s.Open(nil, 0, data[fileHeader:], []byte(fileADPrefix+kind))
	if err != nil {
		return nil, fmt.Errorf("open %s file: %w", kind, err)
	}
	return pt, nil
}
