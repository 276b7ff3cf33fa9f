// Package repo is the bk repository: it initialises and opens repositories,
// manages keys and locks, writes streams as deduplicated, compressed and
// encrypted blobs in packs, records snapshots, and restores them with every
// byte verified.
//
// The on-disk format is specified normatively in FORMAT.md in this folder. In
// short: content-defined chunks are named by keyed BLAKE3, compressed with
// zstd, sealed with AES-256-GCM under a per-pack subkey and stored in packs;
// index files map blobs to packs; a snapshot names the root of a tree of
// chunk lists, or for a directory the roots of a content stream and a
// catalogue of its entries. Writers store packs, then indexes, then the snapshot, so a
// crash never leaves a snapshot that references missing data.
package repo
