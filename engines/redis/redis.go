package redis

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"

	"github.com/bk-backup/bk/engines/internal/secret"

	"github.com/bk-backup/bk/engines"
)

// Name is the engine's name in manifests.
const Name = "redis"

// defaultPort is Redis's port when the URL names none.
const defaultPort = 6379

// Options configure an Engine.
type Options struct {
	// PasswordFile holds the password (one line; a trailing newline is
	// dropped). It must not be group- or world-readable. It wins over
	// REDISCLI_AUTH.
	PasswordFile string
	// Env is the environment read for REDISCLI_AUTH; nil means os.Environ().
	Env []string
}

// Engine dumps one Redis server (all its logical databases) as an RDB file.
type Engine struct {
	host     string
	port     int
	user     string // "" authenticates as the default user
	password string // "" sends no AUTH
}

var _ engines.Engine = (*Engine)(nil)

// New parses redis://[user@]host[:port] and finds the password: from
// opts.PasswordFile, else from REDISCLI_AUTH (set but empty is an error),
// else none. A URL holding a password is an error.
func New(rawURL string, opts Options) (*Engine, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error quotes the URL, which may hold a password.
		return nil, errors.New("redis: malformed URL")
	}
	if u.Scheme != "redis" {
		return nil, fmt.Errorf("redis: URL scheme %q is not redis:// (TLS, rediss://, is not supported)", u.Scheme)
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			return nil, errors.New("redis: the URL holds a password; put it in a file (--db-password-file) or REDISCLI_AUTH")
		}
	}
	if u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return nil, errors.New("redis: the URL must be redis://[user@]host[:port] with no query or fragment")
	}
	if u.Path != "" && u.Path != "/" {
		return nil, errors.New("redis: the URL must name no database: an RDB snapshot holds every logical database of the server")
	}
	e := &Engine{host: u.Hostname(), port: defaultPort}
	if e.host == "" {
		return nil, errors.New("redis: the URL names no host")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("redis: bad port %q", p)
		}
		e.port = n
	}
	if u.User != nil {
		e.user = u.User.Username()
	}
	env := opts.Env
	if env == nil {
		env = os.Environ()
	}
	switch v, ok := secret.LookupEnv(env, "REDISCLI_AUTH"); {
	case opts.PasswordFile != "":
		pw, err := readPassword(opts.PasswordFile)
		if err != nil {
			return nil, err
		}
		e.password = pw
	case ok && v == "":
		return nil, errors.New("redis: REDISCLI_AUTH is set but empty; unset it or give a password")
	case ok:
		e.password = v
	}
	if e.user != "" && e.password == "" {
		return nil, fmt.Errorf("redis: the URL names user %q but no password was given (--db-password-file or REDISCLI_AUTH)", e.user)
	}
	return e, nil
}

// Name returns "redis".
func (e *Engine) Name() string { return Name }

// Source returns the URL without a password, with the port always given.
func (e *Engine) Source() string {
	u := url.URL{Scheme: "redis", Host: e.addr()}
	if e.user != "" {
		u.User = url.User(e.user)
	}
	return u.String()
}

func (e *Engine) addr() string { return net.JoinHostPort(e.host, strconv.Itoa(e.port)) }

// readPassword reads the password file of Options.PasswordFile.
func readPassword(path string) (string, error) {
	pw, err := secret.ReadPasswordFile(path)
	if err != nil {
		return "", fmt.Errorf("redis: %w", err)
	}
	return pw, nil
}
