package mysql

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/bk-backup/bk/engines/internal/secret"
)

// session holds the 0600 option file the children read their password from.
type session struct {
	dir  string
	file string
}

func (s *session) close() { _ = os.RemoveAll(s.dir) }

// session finds the password and writes the option file. With no password
// source (or ~/.my.cnf present) the file names none and the client's own
// option files and defaults apply.
func (e *Engine) session() (*session, error) {
	pw, havePW, err := e.password()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "bk-mysql-")
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	s := &session{dir: dir, file: filepath.Join(dir, "client.cnf")}
	content := "[client]\n"
	if havePW {
		v, err := optionValue(pw)
		if err != nil {
			s.close()
			return nil, err
		}
		content += "password=" + v + "\n"
	}
	f, err := os.OpenFile(s.file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		_, err = f.WriteString(content)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		s.close()
		return nil, fmt.Errorf("credentials: write option file: %w", err)
	}
	return s, nil
}

// password returns the password from, in order, Options.PasswordFile,
// ~/.my.cnf (left to the client: no password returned) and MYSQL_PWD.
func (e *Engine) password() (string, bool, error) {
	if e.opts.PasswordFile != "" {
		pw, err := readPassword(e.opts.PasswordFile)
		return pw, err == nil, err
	}
	env := e.env()
	if home, ok := getenv(env, "HOME"); ok && home != "" {
		if _, err := os.Stat(filepath.Join(home, ".my.cnf")); err == nil {
			return "", false, nil
		}
	}
	if pw, ok := getenv(env, "MYSQL_PWD"); ok {
		if pw == "" {
			return "", false, errors.New("credentials: MYSQL_PWD is set but empty")
		}
		return pw, true, nil
	}
	return "", false, nil
}

// optionValue quotes pw for a MySQL option file. The file's reader strips a
// pair of matching outer quotes and decodes \\, \n, \r, \t, \b and \s; a '#'
// after an unbalanced quote would start a comment, so that case is refused.
func optionValue(pw string) (string, error) {
	r := strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\r", `\r`, "\t", `\t`, "\b", `\b`)
	v := r.Replace(pw)
	q := `"`
	switch {
	case !strings.Contains(pw, `"`):
	case !strings.Contains(pw, `'`):
		q = `'`
	case strings.Contains(pw, "#"):
		return "", errors.New("credentials: a password with both quote characters and '#' cannot be written to a MySQL option file")
	}
	return q + v + q, nil
}

// readPassword reads the password file of Options.PasswordFile.
func readPassword(path string) (string, error) {
	pw, err := secret.ReadPasswordFile(path)
	if err != nil {
		return "", fmt.Errorf("%w", err)
	}
	return pw, nil
}
