package app

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// serveDebug serves Go's runtime profiles on addr (server.debug_addr, a
// loopback address) until the app closes: /debug/pprof/ lists them,
// /debug/pprof/profile?seconds=N takes a CPU profile, /debug/pprof/trace
// an execution trace.
func (a *App) serveDebug(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("server.debug_addr: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// No write timeout: a CPU profile or a trace answers after the
	// seconds it was asked to record.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Warn("debug listener stopped", slog.String("addr", ln.Addr().String()), slog.Any("error", err))
		}
	}()
	a.debugAddr = ln.Addr().String()
	a.log.Info("serving runtime profiles", slog.String("debug_addr", a.debugAddr))
	a.closers = append(a.closers, func() error { _ = srv.Close(); <-done; return nil })
	return nil
}

// DebugAddr is the address of the runtime profiles (server.debug_addr),
// empty when they are not served.
func (a *App) DebugAddr() string { return a.debugAddr }
