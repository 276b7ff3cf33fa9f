package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bk-backup/bk/engines"
	"github.com/bk-backup/bk/engines/internal/proc"
)

// ErrNoServer reports that no redis-server program was found, so a snapshot
// cannot be loaded into a throwaway server.
var ErrNoServer = errors.New("redis-server not found on PATH")

// DefaultLoadTimeout bounds how long a Scratch server may take to load its
// RDB file when ScratchOptions gives no timeout.
const DefaultLoadTimeout = 10 * time.Minute

// ScratchOptions configure a Scratch server.
type ScratchOptions struct {
	// Server is the redis-server program; "" looks it up on PATH.
	Server string
	// LoadTimeout bounds the wait for the server to load the file; 0 means
	// DefaultLoadTimeout.
	LoadTimeout time.Duration
}

// Scratch is a throwaway redis-server that loads one RDB stream, for
// restore drills: Restore writes the stream to dump.rdb in a private
// temporary directory and starts the server on a free loopback port with
// persistence off (--save "" --appendonly no), CountRows reads its key
// counts, and Drop kills it and removes the directory. The server runs
// until Drop, independent of the contexts given to Restore and CountRows.
// Use a Scratch from one goroutine.
type Scratch struct {
	server      string
	loadTimeout time.Duration
	dir         string
	addr        string
	child       *proc.Child
	stop        context.CancelFunc
	exited      chan struct{}
	waitErr     error // valid once exited is closed
}

var _ engines.Restorer = (*Scratch)(nil)

// NewScratch finds redis-server (an error wrapping ErrNoServer when it is
// missing) and makes the temporary directory. Call Drop when done, also
// after a failed Restore.
func NewScratch(opts ScratchOptions) (*Scratch, error) {
	server := opts.Server
	if server == "" {
		server = "redis-server"
	}
	path, err := exec.LookPath(server)
	if err != nil {
		return nil, fmt.Errorf("redis: %w (%v)", ErrNoServer, err)
	}
	dir, err := os.MkdirTemp("", "bk-drill-redis-")
	if err != nil {
		return nil, fmt.Errorf("redis: scratch directory: %w", err)
	}
	s := &Scratch{server: path, loadTimeout: opts.LoadTimeout, dir: dir}
	if s.loadTimeout <= 0 {
		s.loadTimeout = DefaultLoadTimeout
	}
	return s, nil
}

// Addr is the server's host:port once Restore has started it.
func (s *Scratch) Addr() string { return s.addr }

// Restore writes r to dump.rdb, checking it as an RDB file (magic, version,
// EOF opcode, CRC64) on the way, then starts redis-server on it and returns
// once the server has loaded the file. force is ignored: the target is
// always new. Restore may be called once.
func (s *Scratch) Restore(ctx context.Context, r io.Reader, force bool) error {
	if s.child != nil {
		return errors.New("redis: the scratch server was already started")
	}
	if err := s.writeFile(r); err != nil {
		return fmt.Errorf("redis: write %s: %w", filepath.Join(s.dir, "dump.rdb"), err)
	}
	// A free port may be taken between the probe and the server's bind;
	// try a few.
	var err error
	for range 3 {
		if err = s.start(ctx); err == nil || !strings.Contains(err.Error(), "Address already in use") {
			break
		}
		s.kill()
	}
	if err != nil {
		return fmt.Errorf("redis: scratch server: %w", err)
	}
	return nil
}

func (s *Scratch) writeFile(r io.Reader) error {
	f, err := os.OpenFile(filepath.Join(s.dir, "dump.rdb"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	var check rdbCheck
	if _, err := io.Copy(io.MultiWriter(f, &check), r); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	_, err = check.check()
	return err
}

// start runs the server on a free port and waits until it has loaded.
func (s *Scratch) start(ctx context.Context) error {
	port, err := freeLoopbackPort()
	if err != nil {
		return err
	}
	s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--dir", s.dir, "--dbfilename", "dump.rdb",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", ""}
	// The server lives until Drop, not until ctx ends.
	cctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = stop
	s.child = proc.Command(cctx, s.server, args, nil, 8)
	s.child.Cmd.Dir = s.dir
	s.child.Cmd.Stdout = s.child.Cmd.Stderr // the log, for errors
	if err := s.child.Start(); err != nil {
		return err
	}
	s.exited = make(chan struct{})
	go func() {
		s.waitErr = s.child.Wait()
		close(s.exited)
	}()
	return s.waitLoaded(ctx)
}

// waitLoaded polls the server until it answers PING and INFO persistence
// says loading:0, the server exits, the load timeout passes or ctx ends.
func (s *Scratch) waitLoaded(ctx context.Context) error {
	deadline := time.Now().Add(s.loadTimeout)
	var last error
	for {
		select {
		case <-s.exited:
			if s.waitErr == nil {
				return errors.New("redis-server exited before loading finished")
			}
			return fmt.Errorf("redis-server stopped: %w", s.waitErr)
		default:
		}
		done, err := s.loaded()
		if done {
			return nil
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server did not load the file within %v (last: %v)", s.loadTimeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.exited:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// loaded reports whether the server answers and has finished loading.
func (s *Scratch) loaded() (bool, error) {
	nc, err := net.DialTimeout("tcp", s.addr, time.Second)
	if err != nil {
		return false, err
	}
	defer nc.Close()
	c := newConn(nc, 5*time.Second)
	if _, err := c.do("PING"); err != nil {
		return false, err // -LOADING while the file is read
	}
	info, err := c.do("INFO", "persistence")
	if err != nil {
		return false, err
	}
	if v := infoField(info, "loading"); v != "0" {
		return false, fmt.Errorf("INFO persistence: loading:%s", v)
	}
	return true, nil
}

// CountRows returns the exact key count (DBSIZE) of every non-empty
// logical database, named "db0", "db1", ..., from INFO keyspace.
func (s *Scratch) CountRows(ctx context.Context) ([]engines.Table, error) {
	if s.child == nil {
		return nil, errors.New("redis: the scratch server is not running")
	}
	d := net.Dialer{Timeout: dialTimeout}
	nc, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return nil, fmt.Errorf("redis: count keys: %w", err)
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	defer stop()
	info, err := newConn(nc, time.Minute).do("INFO", "keyspace")
	if err != nil {
		return nil, fmt.Errorf("redis: count keys: INFO keyspace: %w", err)
	}
	tables, err := parseKeyspace(info)
	if err != nil {
		return nil, fmt.Errorf("redis: count keys: %w", err)
	}
	for i := range tables {
		tables[i].Estimate = false
	}
	return tables, nil
}

// Drop kills the server and removes the temporary directory. It may be
// called more than once.
func (s *Scratch) Drop(ctx context.Context) error {
	s.kill()
	if s.dir == "" {
		return nil
	}
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("redis: remove %s: %w", s.dir, err)
	}
	s.dir = ""
	return nil
}

// kill stops a started server and waits for it.
func (s *Scratch) kill() {
	if s.child == nil {
		return
	}
	s.stop()
	if s.exited != nil {
		<-s.exited
	}
	s.child, s.exited = nil, nil
}

// freeLoopbackPort asks the kernel for a free TCP port on 127.0.0.1.
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
