// Package local is the store.Backend for a repository in a folder on a local
// (or locally mounted) file system.
//
// The layout under the repository folder is part of the on-disk format:
//
//	config
//	keys/<name>
//	locks/<name>
//	snapshots/<name>
//	index/<name>
//	data/<first two characters of name>/<name>
//
// Create makes the repository folder and the five type folders. The
// subfolders of data/ are created lazily, by the first Put that needs one.
// Folders are created with mode 0700 and files with mode 0600.
//
// A Put writes a temporary file named ".tmp-*" in the destination folder,
// fsyncs it, renames it over the final name and fsyncs the folder, so a file
// is either absent or complete, even after a crash. List skips temporary
// files left behind by a crash, and anything else whose name is not a valid
// file name.
package local
