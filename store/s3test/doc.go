// Package s3test runs a throwaway S3 server, versitygw with its posix
// backend, for the tests of the S3 backend and of anything built on it.
//
// Start needs the versitygw program: on PATH, or in $GOPATH/bin, where
//
//	go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
//
// puts it. Without it the test is skipped, or fails when
// BK_REQUIRE_SERVICES=1 (see internal/testenv).
package s3test
