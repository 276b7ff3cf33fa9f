package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/bk-backup/bk/internal/schedule"
	"github.com/bk-backup/bk/store/s3"
)

// ConnectTimeout bounds each connection attempt of Validate(ctx, true).
const ConnectTimeout = 3 * time.Second

// maxSecretFile caps what checkSecretFile reads of a password file.
const maxSecretFile = 64 << 10

// Validate checks what Load cannot without the machine: that the password
// files (password_file, db_password_file, the email password_file) are
// readable, regular, owner-only files of one line, that the S3 ca_file is
// readable, and, when systemd-analyze is installed, that it accepts every
// schedule. With connect it also checks that each source answers (a TCP
// connection to PostgreSQL, MariaDB and Redis servers, the file of a SQLite
// source, the folder of a tree source), that the scratch servers answer,
// and that the repository exists (a local folder holding a config file, or
// an S3 endpoint accepting connections). Each problem carries the line of
// the key concerned; none is reported for a good configuration.
func (c *Config) Validate(ctx context.Context, connect bool) []Problem {
	v := &validator{c: c}
	v.secret(c.Repository.PasswordFile, "repository", "password_file")
	if f := c.Repository.S3.CAFile; f != "" {
		if _, err := os.ReadFile(f); err != nil {
			v.add(fmt.Sprintf("ca_file: %v", err), "repository", "s3", "ca_file")
		}
	}
	for _, j := range c.Jobs {
		v.secret(j.DBPasswordFile, "jobs", j.Name, "db_password_file")
		if e := j.Notify.Email; e != nil {
			v.secret(e.PasswordFile, "jobs", j.Name, "notify", "email", "password_file")
		}
	}
	v.calendars(ctx)
	if connect {
		v.connect(ctx)
	}
	sortProblems(v.problems)
	return v.problems
}

// validator collects the problems of Validate; add is safe for concurrent
// use.
type validator struct {
	c        *Config
	mu       sync.Mutex
	problems []Problem
}

// add records msg at the line of the key at path.
func (v *validator) add(msg string, path ...string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.problems = append(v.problems, Problem{File: v.c.Path, Line: v.c.Line(path...), Msg: msg})
}

// secret checks the password file named at path, if any.
func (v *validator) secret(file string, path ...string) {
	if file == "" {
		return
	}
	if err := checkSecretFile(file); err != nil {
		v.add(fmt.Sprintf("%s: %v", path[len(path)-1], err), path...)
	}
}

// checkSecretFile checks that file is a regular file of one non-empty line
// that neither group nor others may read, the rules bk applies when it reads
// a password file. Errors name the file, never its content.
func checkSecretFile(file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", file)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s has mode %04o; it must not be group- or world-readable (chmod 600 %s)", file, perm, file)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	defer clear(b)
	if len(b) > maxSecretFile {
		return fmt.Errorf("%s is larger than %d bytes", file, maxSecretFile)
	}
	b = bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
	switch {
	case len(b) == 0:
		return fmt.Errorf("%s is empty", file)
	case bytes.ContainsAny(b, "\n\r\x00"):
		return fmt.Errorf("%s must hold one line", file)
	}
	return nil
}

// calendars asks systemd-analyze, when installed, about every schedule.
func (v *validator) calendars(context.Context) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		return
	}
	for _, j := range v.c.Jobs {
		for _, s := range []struct{ key, expr string }{
			{"schedule", j.Schedule}, {"prune_schedule", j.PruneSchedule}, {"check_schedule", j.CheckSchedule},
		} {
			if s.expr == "" {
				continue
			}
			// Only a rejection counts: a systemd-analyze that cannot run
			// says nothing about the expression.
			if err := schedule.VerifyCalendar(s.expr); errors.Is(err, schedule.ErrInvalid) {
				v.add(fmt.Sprintf("%s: systemd-analyze: %v", s.key, err), "jobs", j.Name, s.key)
			}
		}
	}
}

// connect checks, concurrently, that the repository, the sources and the
// scratch servers are there.
func (v *validator) connect(ctx context.Context) {
	var wg sync.WaitGroup
	dial := func(addr, what string, path ...string) {
		wg.Go(func() {
			if err := dialCheck(ctx, addr); err != nil {
				var oe *net.OpError
				if errors.As(err, &oe) {
					err = oe.Err // the OpError repeats the address
				}
				v.add(fmt.Sprintf("%s: cannot connect to %s: %v", what, addr, err), path...)
			}
		})
	}
	r := v.c.Repository
	switch {
	case strings.HasPrefix(r.Path, "s3:"):
		if cfg, err := s3.ParseURL(r.Path); err == nil {
			addr := cfg.Endpoint
			if _, _, err := net.SplitHostPort(addr); err != nil {
				port := "443"
				if !cfg.Secure {
					port = "80"
				}
				addr = net.JoinHostPort(addr, port)
			}
			dial(addr, "repository", "repository", "path")
		}
	case r.Path != "":
		dir := strings.TrimPrefix(r.Path, "local:")
		if _, err := os.Stat(filepath.Join(dir, "config")); err != nil {
			v.add(fmt.Sprintf("repository %s: no repository there (create it with `bk init`): %v", dir, err), "repository", "path")
		}
	}
	for _, j := range v.c.Jobs {
		for i, src := range j.Sources {
			ps, err := parseSource(src)
			if err != nil {
				continue // Load reported it
			}
			path := []string{"jobs", j.Name, "sources", elem(i)}
			what := "source " + redactString(src)
			switch ps.kind {
			case kindTree:
				if fi, err := os.Stat(ps.path); err != nil {
					v.add(fmt.Sprintf("%s: %v", what, err), path...)
				} else if !fi.IsDir() {
					v.add(fmt.Sprintf("%s: %s is not a folder", what, ps.path), path...)
				}
			case kindSQLite:
				if fi, err := os.Stat(ps.path); err != nil {
					v.add(fmt.Sprintf("%s: %v", what, err), path...)
				} else if !fi.Mode().IsRegular() {
					v.add(fmt.Sprintf("%s: %s is not a regular file", what, ps.path), path...)
				}
			default:
				dial(ps.addr, what, path...)
			}
		}
		for i, s := range j.Check.Scratch {
			if addr, err := parseScratch(s); err == nil {
				dial(addr, "scratch server "+redactString(s), "jobs", j.Name, "check", "scratch", elem(i))
			}
		}
	}
	wg.Wait()
}

// dialCheck opens and closes a TCP connection to addr.
func dialCheck(ctx context.Context, addr string) error {
	d := net.Dialer{Timeout: ConnectTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return conn.Close()
}
