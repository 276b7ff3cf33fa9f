package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// defaultListen is where bk serve listens unless --listen says otherwise:
// the loopback interface only, as the server has no authentication.
const defaultListen = "127.0.0.1:9290"

// shutdownTimeout bounds how long bk serve waits for requests in flight
// after SIGINT or SIGTERM.
const shutdownTimeout = 10 * time.Second

func (a *app) serveCommand() *cobra.Command {
	var (
		listen      string
		allowRemote bool
	)
	c := &cobra.Command{
		Use:   "serve [--listen ADDR] [--allow-remote]",
		Short: "Serve the state of the config's jobs over HTTP: /metrics, /healthz and a status page",
		Long: `Serve the state of the jobs of the config file (the same file bk run reads) over
HTTP, with the repository kept open:

  /metrics   Prometheus metrics, the ones bk run --metrics-file writes
  /healthz   200 "ok" when every scheduled job is on time, else 503 with one
             line per late job
  /          a status page: jobs, sources, last snapshots, checks, and the
             bytes added per day over the last 30 days

The snapshot list is read again at most every 30 seconds; check results come
from the state folder bk run records them in (BK_STATE_DIR). Like bk run's
metrics, only the snapshots this host took count.

A job is on time when its newest good snapshot is younger than its schedule
allows: hourly 1h, daily 1d, weekly 7d, monthly 31d, quarterly 92d,
semiannually 184d, yearly 366d, minutely 1m, and 1d for any other calendar
expression, each plus 25% grace for slow runs and timer jitter (a daily job
is late after 1d6h). A scheduled job that never had a good snapshot is late;
a job without a schedule is never late.

bk serve has no authentication, so it listens on 127.0.0.1:9290 and refuses
an address other than a loopback one unless --allow-remote is given. Put an
authenticating reverse proxy in front of it to reach it from elsewhere.
SIGINT or SIGTERM stop it gracefully.`,
		Example: `  bk --config /etc/bk/bk.toml serve
  bk serve --listen 127.0.0.1:9300
  bk serve --listen [::1]:9290
  bk serve --listen 10.0.0.5:9290 --allow-remote   # behind a firewall or a proxy
  curl -fsS http://127.0.0.1:9290/healthz`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			loopback, err := isLoopback(ctx, listen)
			if err != nil {
				return usagef("--listen %q: %v", listen, err)
			}
			if !loopback && !allowRemote {
				return usagef("--listen %s is not a loopback address, and bk serve has no authentication: "+
					"anyone who can reach it would see the jobs and repository; pass --allow-remote to serve it anyway "+
					"(behind a firewall or an authenticating reverse proxy)", listen)
			}
			r, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listen: %w", err)
			}
			if !loopback {
				fmt.Fprintf(a.stderr, "bk serve: warning: listening on %s without authentication (--allow-remote)\n", ln.Addr())
			}
			s := newServer(a, r, cfg)
			srv := &http.Server{
				Handler:           s.handler(),
				ReadHeaderTimeout: 10 * time.Second,
				BaseContext:       func(net.Listener) context.Context { return ctx },
			}
			if !a.quiet {
				fmt.Fprintf(a.stdout, "bk serve: listening on http://%s/ (config %s, repository %s)\n",
					ln.Addr(), cfg.Path, redactURL(r.Backend().Location()))
			}
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ln) }()
			select {
			case err := <-served:
				return fmt.Errorf("serve: %w", err)
			case <-ctx.Done():
			}
			if !a.quiet {
				fmt.Fprintln(a.stdout, "bk serve: shutting down")
			}
			sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				return fmt.Errorf("shut down: %w", err)
			}
			if err := <-served; !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve: %w", err)
			}
			return nil
		},
	}
	c.Flags().StringVar(&listen, "listen", defaultListen, "address to listen on, host:port")
	c.Flags().BoolVar(&allowRemote, "allow-remote", false, "allow a non-loopback --listen address (there is no authentication)")
	return c
}

// isLoopback reports whether every address the host of addr (host:port)
// stands for is a loopback one. An empty host means every interface.
func isLoopback(ctx context.Context, addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, err
	}
	if host == "" {
		return false, nil
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback(), nil
	}
	if host == "localhost" {
		return true, nil
	}
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return false, err
	}
	for _, ip := range ips {
		if !ip.IP.IsLoopback() {
			return false, nil
		}
	}
	return len(ips) > 0, nil
}
