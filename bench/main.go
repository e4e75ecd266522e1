// Command bench measures Vigil end to end against the plain alternative
// (PostgreSQL 15 with COPY and hand-written SQL) and checks its
// reliability under SIGKILL, overload, a full disk and a read-only data
// directory. It builds the real binary (go build ./cmd/vigil), runs
// `vigil serve` as a child process on 127.0.0.1 with a fresh data
// directory, and drives it over loopback only.
//
//	go run ./bench [flags]               performance run; writes docs/performance.md
//	go run ./bench reliability [flags]   the reliability harness (long form)
//	go run ./bench import [-records N]   the vendor-file import phase alone, printed
//	go run ./bench retention [flags]     the retention phase alone, printed
//
// `go run ./bench -h` and `go run ./bench reliability -h` list the flags.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	args := os.Args[1:]
	switch {
	case len(args) > 0 && args[0] == "reliability":
		err = runReliability(ctx, args[1:])
	case len(args) > 0 && args[0] == "import":
		err = runImport(ctx, args[1:])
	case len(args) > 0 && args[0] == "retention":
		err = runRetentionPhase(ctx, args[1:])
	default:
		err = runPerf(ctx, args)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		stop()
		os.Exit(1)
	}
}
