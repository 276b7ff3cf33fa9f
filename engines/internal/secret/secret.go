// Package secret reads the database passwords of bk's engines and edits the
// environments their tools run with, so every engine applies the same rules:
// a password file must be a regular, owner-only file of one line.
package secret

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxPasswordFile caps what ReadPasswordFile reads.
const maxPasswordFile = 64 << 10

// ReadPasswordFile reads a password from a regular file that neither group
// nor others may read. One trailing newline is dropped; an empty file, or
// one of several lines, is refused. Errors name the file, never its content.
func ReadPasswordFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("password file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("password file %s has mode %04o; it must not be group- or world-readable (chmod 600)", path, perm)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxPasswordFile+1))
	if err != nil {
		return "", fmt.Errorf("password file %s: %w", path, err)
	}
	if len(b) > maxPasswordFile {
		return "", fmt.Errorf("password file %s is larger than %d bytes", path, maxPasswordFile)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) == 0 {
		return "", fmt.Errorf("password file %s is empty", path)
	}
	if bytes.ContainsAny(b, "\n\r\x00") {
		return "", fmt.Errorf("password file %s must hold one line", path)
	}
	return string(b), nil
}

// LookupEnv is os.LookupEnv over env; the last setting of key wins.
func LookupEnv(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// UnsetEnv returns a copy of env without key.
func UnsetEnv(env []string, key string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k != key {
			out = append(out, kv)
		}
	}
	return out
}

// SetEnv returns a copy of env with key set to value.
func SetEnv(env []string, key, value string) []string {
	return append(UnsetEnv(env, key), key+"="+value)
}
