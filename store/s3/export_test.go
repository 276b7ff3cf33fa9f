package s3

import "time"

// SetPartSize sets the part size of multipart uploads, so tests can upload
// several parts without large files.
func SetPartSize(b *Backend, n uint64) { b.partSize = n }

// SetListPageSize sets the number of keys per list request.
func SetListPageSize(b *Backend, n int) { b.listPage = n }

// SetBackoff sets the backoff between attempts, so retry tests run fast.
func SetBackoff(b *Backend, base, limit time.Duration) { b.policy.base, b.policy.cap = base, limit }
