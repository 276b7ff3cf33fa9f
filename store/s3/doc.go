// Package s3 is the store.Backend for a repository in an S3 bucket (Amazon
// S3 or a compatible server such as MinIO or versitygw), reached through
// github.com/minio/minio-go/v7.
//
// # Layout
//
// A repository lives under a key prefix of one bucket ("" for the bucket
// root). The keys mirror the local layout of repo/FORMAT.md §1:
//
//	PREFIX/config
//	PREFIX/keys/<name>
//	PREFIX/locks/<name>
//	PREFIX/snapshots/<name>
//	PREFIX/index/<name>
//	PREFIX/data/<first two characters of name>/<name>
//
// List skips keys that do not fit this layout (folder markers, names that
// are not valid, packs under the wrong data/ subfolder).
//
// # What the backend relies on
//
// The store.Backend contract needs atomic puts and read-after-write and
// list-after-write consistency. The backend relies on the server for all
// three:
//   - A PUT (or the completion of a multipart upload) makes the whole object
//     visible at once; readers never see a part of it. S3 has always
//     guaranteed this.
//   - Strong read-after-write and list-after-write consistency, including
//     after overwrites and deletes. Amazon S3 provides it since December
//     2020, and so do MinIO and versitygw (whose posix backend renames a
//     complete file into place). Servers that are only eventually consistent
//     are not supported: a repository on one may lose track of fresh files.
//
// Every PUT and every part of a multipart upload carries a checksum, so the
// server rejects a body corrupted in transit: over HTTPS (and without keys)
// Content-MD5; over plain HTTP the SigV4 streaming signature, a signed
// SHA-256 of every 64 KiB chunk, which makes an MD5 redundant. It counts
// the bytes the caller's reader yields, so a reader that yields more or fewer
// bytes than announced fails the put before the object is completed. Objects
// larger than the part size (16 MiB) go up as multipart uploads.
//
// Get asks for the requested byte range with a ranged GET and checks the
// object size the server reports, so a range past the end of the object is
// an error that matches io.ErrUnexpectedEOF. Delete looks the object up
// first, because S3 deletes succeed for missing objects while the contract
// wants store.ErrNotFound.
//
// # Errors and retries
//
// Each operation is retried on transient errors (5xx responses, throttling
// such as 429, SlowDown or Throttling, RequestTimeout, timeouts, refused or
// reset connections and unexpected EOFs), with exponential backoff and full
// jitter, until Config.RetryDeadline (2 minutes by default) has passed.
// minio-go's own retries are switched off, so the retry policy lives here.
// Permanent errors (403 access denied, bad credentials, a missing bucket,
// other 4xx) are not retried. The final error says which it was, for
// example
//
//	s3 put data/ab/abcd…: transient error, gave up after 6 attempts in 2m0s: 503 SlowDown: …
//	s3 get config: permanent error (access denied: check the credentials and the bucket policy): …
//
// A missing object or bucket gives an error that matches store.ErrNotFound.
// An error of the caller's reader in Put, or of the function passed to Get,
// is never retried and is returned wrapped, so errors.Is finds it.
//
// Credentials never appear in an error: the messages of the errors the
// backend returns are scrubbed of every access key id, secret key and session
// token the backend has used, as a last line of defence, and the errors wrap
// only sentinels (store.ErrNotFound, context errors, io.ErrUnexpectedEOF, the
// caller's own errors), never the SDK's errors.
package s3
