package crypt

import (
	"encoding/hex"
	"fmt"
	"hash"

	"github.com/zeebo/blake3"
)

// IDSize is the length of an ID in bytes. Part of the on-disk format; must
// not change.
const IDSize = 32

// ID is a BLAKE3-256 digest naming a blob or a stored file. The zero ID is
// the null ID and names nothing.
type ID [IDSize]byte

// String returns the ID as 64 lowercase hex characters.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first 8 hex characters of the ID, for display.
func (id ID) Short() string { return hex.EncodeToString(id[:4]) }

// IsNull reports whether id is the zero ID.
func (id ID) IsNull() bool { return id == ID{} }

// ParseID parses the canonical form of an ID: exactly 64 lowercase hex
// characters. Uppercase is rejected so that every ID has one spelling, which
// matters when IDs are file names.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*IDSize {
		return id, fmt.Errorf("parse ID: want %d hex characters, got %d", 2*IDSize, len(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return id, fmt.Errorf("parse ID %q: invalid character %q at offset %d", s, c, i)
		}
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return ID{}, fmt.Errorf("parse ID %q: %w", s, err)
	}
	return id, nil
}

// MarshalText encodes the ID as lowercase hex, so IDs are hex strings in JSON.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText parses an ID in the form accepted by ParseID.
func (id *ID) UnmarshalText(text []byte) error {
	v, err := ParseID(string(text))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// Hash returns the unkeyed BLAKE3-256 digest of data. It names a stored file
// by the bytes it holds.
func Hash(data []byte) ID { return blake3.Sum256(data) }

// NewHasher returns a streaming unkeyed BLAKE3-256 hash whose Sum equals Hash
// of the bytes written.
func NewHasher() hash.Hash { return blake3.New() }
