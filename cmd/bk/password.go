package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"golang.org/x/term"
)

const maxPasswordSize = 4096

// password finds the repository password: --password-file, --password-command,
// then BK_PASSWORD, BK_PASSWORD_FILE, BK_PASSWORD_COMMAND, then a prompt on
// the terminal (twice when confirm is set). It is never taken from argv.
func (a *app) password(confirm bool) ([]byte, error) {
	switch {
	case a.passwordFile != "":
		return readPasswordFile(a.passwordFile)
	case a.passwordCmd != "":
		return passwordFromCommand(a.passwordCmd)
	}
	if v, ok := os.LookupEnv("BK_PASSWORD"); ok {
		if v == "" {
			return nil, errors.New("BK_PASSWORD is set but empty; set a password or unset it")
		}
		return []byte(v), nil
	}
	if v, ok := os.LookupEnv("BK_PASSWORD_FILE"); ok {
		if v == "" {
			return nil, errors.New("BK_PASSWORD_FILE is set but empty")
		}
		return readPasswordFile(v)
	}
	if v, ok := os.LookupEnv("BK_PASSWORD_COMMAND"); ok {
		if v == "" {
			return nil, errors.New("BK_PASSWORD_COMMAND is set but empty")
		}
		return passwordFromCommand(v)
	}
	return promptPassword("Repository password: ", confirm)
}

// newPassword reads the password for a new key: BK_NEW_PASSWORD,
// --new-password-file, or a prompt asked twice.
func newPassword(file string) ([]byte, error) {
	if file != "" {
		return readPasswordFile(file)
	}
	if v, ok := os.LookupEnv("BK_NEW_PASSWORD"); ok {
		if v == "" {
			return nil, errors.New("BK_NEW_PASSWORD is set but empty")
		}
		return []byte(v), nil
	}
	return promptPassword("New password: ", true)
}

func readPasswordFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read password file: %w", err)
	}
	defer f.Close()
	buf, err := io.ReadAll(io.LimitReader(f, maxPasswordSize+1))
	if err != nil {
		return nil, fmt.Errorf("read password file %s: %w", path, err)
	}
	if len(buf) > maxPasswordSize {
		return nil, fmt.Errorf("password file %s is larger than %d bytes", path, maxPasswordSize)
	}
	pw := bytes.TrimRight(buf, "\r\n")
	if len(pw) == 0 {
		return nil, fmt.Errorf("password file %s is empty", path)
	}
	return pw, nil
}

func passwordFromCommand(cmdline string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", cmdline)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("password command failed: %w", err)
	}
	pw := bytes.TrimRight(out, "\r\n")
	if len(pw) == 0 {
		return nil, errors.New("password command printed nothing")
	}
	return pw, nil
}

// promptPassword asks on the controlling terminal, so stdin stays free for data.
func promptPassword(prompt string, confirm bool) ([]byte, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil || !term.IsTerminal(int(tty.Fd())) {
		if tty != nil {
			tty.Close()
		}
		return nil, errors.New("no password given: set BK_PASSWORD, BK_PASSWORD_FILE or BK_PASSWORD_COMMAND, or pass --password-file")
	}
	defer tty.Close()
	read := func(p string) ([]byte, error) {
		fmt.Fprint(tty, p)
		pw, err := term.ReadPassword(int(tty.Fd()))
		fmt.Fprintln(tty)
		if err != nil {
			return nil, fmt.Errorf("read password: %w", err)
		}
		return pw, nil
	}
	pw, err := read(prompt)
	if err != nil {
		return nil, err
	}
	if len(pw) == 0 {
		return nil, errors.New("empty password")
	}
	if confirm {
		again, err := read("Repeat password: ")
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(pw, again) {
			return nil, errors.New("the passwords do not match")
		}
	}
	return pw, nil
}
