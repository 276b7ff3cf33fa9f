// Package crypt is the cryptographic core of bk: content IDs, the master key,
// the AES-256-GCM sealing of blobs and repository files, and the
// password-protected key files that hold the master key.
//
// # IDs
//
// An [ID] is a 32-byte BLAKE3-256 digest. Two kinds exist and must not be
// confused:
//
//   - [Hash] and [NewHasher] are unkeyed. They name a stored file by the bytes
//     it holds, so anyone can check a file against its name without a key.
//   - [MasterKey.BlobID] and [MasterKey.NewIDHasher] are keyed with
//     [MasterKey.ID]. They name a blob by its plaintext, and reveal nothing
//     about that plaintext to someone without the key.
//
// # Sealing and the nonce argument
//
// Data is never encrypted under the master key directly. Each sealed unit
// (a pack, or a repository file) draws a fresh random 256-bit salt and
// derives its own AES-256-GCM subkey with [MasterKey.Subkey]:
//
//	subkey = BLAKE3-DeriveKey("bk 2026-11 subkey v1", Encrypt || salt)[:32]
//	nonce  = 0x00000000 || big-endian uint64(counter)
//
// Under one subkey the nonce is a counter that the caller never repeats (a
// pack uses the blob's index within the pack; a sealed file uses 0 for its
// single message). So a (key, nonce) pair never repeats, however many blobs a
// repository holds, and the per-key message limit of random-nonce GCM does not
// apply. The only probabilistic event is two subkeys getting the same salt:
// by the birthday bound that has probability about 2^-128 even after 2^64
// subkeys.
//
// # Sealed files
//
// Config, index, snapshot and lock files share one self-describing layout,
// produced by [MasterKey.SealFile]:
//
//	version (1 byte, FileVersion) || salt (32 bytes) || GCM ciphertext+tag
//
// The GCM message is sealed under Subkey(salt) with nonce 0 and associated
// data "bk file " + kind, so a file of one kind cannot be passed off as
// another. This layout is part of the on-disk format; must not change.
//
// # Key files
//
// A [KeyFile] stores the master key encrypted under a key-encryption key
// derived from a password with scrypt ([KDFParams]). Parameters read from a
// key file are untrusted and capped ([KDFParams.Validate]) so a hostile
// repository cannot make bk allocate unbounded memory.
//
// Errors never contain passwords or key material. Corrupt or tampered sealed
// data yields an error matching [ErrAuth]; a password that opens no key file
// yields one matching [ErrWrongPassword].
package crypt
