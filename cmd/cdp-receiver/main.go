// cdp-receiver is the repository's test receiver run by hand: a Segment-spec endpoint
// (POST /v1/batch, Basic auth with the write key) and a native one (POST /v1/hearth,
// zstd protobuf, bearer token) on one address, that checks every event as a CDP
// does, de-duplicates by messageId, prints each event it accepts as one JSON line,
// and serves its counts at GET /counts. It is for trying hearth's upstream by hand
// (README, "Sending summaries upstream"); the tests use the same receiver
// (sync/cdptest).
//
//	go run ./cmd/cdp-receiver -listen 127.0.0.1:8088 -write-key demo-key
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hearth-iot/hearth/sync/cdptest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "cdp-receiver:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cdp-receiver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8088", "address to listen on")
	key := fs.String("write-key", "", "the write key senders must use (Basic auth user; bearer token on /v1/hearth)")
	quiet := fs.Bool("quiet", false, "print only the counts, every 10 seconds")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *key == "" {
		return errors.New("-write-key is required: the key hearth's sync.segment.write_key must match")
	}
	rcv := cdptest.New(cdptest.Options{WriteKey: *key})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: rcv, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stderr, "cdp-receiver: listening on http://%s (POST /v1/batch, POST /v1/hearth, GET /counts)\n", ln.Addr())
	go func() { _ = srv.Serve(ln) }()
	printed, problems := 0, 0
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := time.Now()
	enc := json.NewEncoder(stdout)
	for {
		select {
		case <-ctx.Done():
			_ = srv.Close()
			fmt.Fprintf(stderr, "cdp-receiver: %+v\n", rcv.Counts())
			return nil
		case <-t.C:
		}
		evs := rcv.Events()
		if !*quiet {
			for _, e := range evs[printed:] {
				_ = enc.Encode(e)
			}
		}
		printed = len(evs)
		if time.Since(last) >= 10*time.Second {
			last = time.Now()
			c := rcv.Counts()
			fmt.Fprintf(stderr, "cdp-receiver: requests %d, accepted %d, events received %d, duplicates %d, unique %d, rejected %d\n",
				c.Requests, c.Accepted, c.Received, c.Duplicates, c.Unique, c.Rejected)
			ps := rcv.Problems()
			for _, p := range ps[problems:] {
				fmt.Fprintf(stderr, "cdp-receiver: rejected: %s\n", p)
			}
			problems = len(ps)
		}
	}
}
