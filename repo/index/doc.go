// Package index maps blob IDs to their place in the repository: which pack,
// at which offset, of which length and encoding. It holds the compact
// in-memory index (about 52 bytes per blob) and the codec of index files
// (repo/FORMAT.md, section 8).
package index
