// Package metrics renders the state of bk's jobs and repositories in the
// Prometheus text exposition format (version 0.0.4), for node_exporter's
// textfile collector (WriteFile) or an HTTP /metrics endpoint (Write,
// Handler).
//
// # Metrics
//
// Every metric is a gauge named bk_*. Per source, labelled job and source:
//
//	bk_last_success_timestamp_seconds  time of the last good snapshot; 0 if never
//	bk_last_duration_seconds           how long the last good snapshot took
//	bk_last_bytes_read                 bytes read from the source by it
//	bk_last_bytes_added                bytes it added to the repository
//	bk_dedup_ratio                     read / max(added, 1) for it
//	bk_suspicious                      1 if the newest snapshot is marked suspicious, else 0
//	bk_last_check_success              1 if the last check passed, 0 if it failed
//	bk_last_check_timestamp_seconds    when that check ran
//
// The four "last good snapshot" gauges are left out for a source that never
// had one, and the two check gauges for a source never checked, so that a
// missing value is not mistaken for a zero. bk_last_success_timestamp_seconds
// is always there, 0 for never, so an alert on its age fires for a source
// that never succeeded.
//
// Per repository, labelled repository (its location, with any password in
// the URL masked):
//
//	bk_repository_size_bytes   stored bytes
//	bk_repository_snapshots    number of snapshots
//
// And bk_metrics_generated_timestamp_seconds, unlabelled, says when the
// values were gathered, so a stale textfile can be alerted on.
//
// # Output
//
// The output is deterministic: families in the order above, samples sorted
// by label values. Label values are escaped per the format (backslash,
// double quote, newline) and invalid UTF-8 is replaced. Two sources with the
// same job and source, or two repositories with the same location, would
// be a duplicate series, which Prometheus rejects for the whole file, so
// Write refuses them.
package metrics
