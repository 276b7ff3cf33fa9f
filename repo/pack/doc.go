// Package pack encodes and decodes bk pack files: many sealed blobs followed
// by a sealed header that lists them (repo/FORMAT.md, section 6).
//
// A Writer builds one pack in memory and seals each blob with the pack's own
// subkey, using the blob's offset as the GCM counter. ReadHeader parses the
// header of a stored pack back. The package does no storage I/O of its own.
package pack
