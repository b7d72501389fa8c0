// Command testserver serves the testserver pattern file over HTTP for demos
// and benchmarks. Once listening it prints the file URL as its only stdout
// line (preceded by the content's sha256 with -print-sha256) and serves until
// SIGINT or SIGTERM.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/convoy-dl/convoy/internal/testserver"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	size := flag.String("size", "1M", "content size in bytes; suffixes K, M, G are binary units")
	seed := flag.Uint64("seed", 1, "content seed")
	rate := flag.String("rate", "0", "per-response rate limit in bytes/s (suffixes K, M, G allowed); 0 = unlimited")
	printSum := flag.Bool("print-sha256", false, "print the sha256 hex of the content before the URL")
	flag.Parse()
	if err := run(*addr, *size, *seed, *rate, *printSum); err != nil {
		fmt.Fprintln(os.Stderr, "testserver:", err)
		os.Exit(1)
	}
}

func run(addr, sizeFlag string, seed uint64, rateFlag string, printSum bool) error {
	size, err := parseBytes(sizeFlag)
	if err != nil {
		return fmt.Errorf("-size: %w", err)
	}
	rate, err := parseBytes(rateFlag)
	if err != nil {
		return fmt.Errorf("-rate: %w", err)
	}
	h := testserver.NewHandler(testserver.Size(size), testserver.Seed(seed), testserver.Rate(rate))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	if printSum {
		fmt.Println(contentSum(seed, size))
	}
	fmt.Printf("http://%s%s\n", ln.Addr(), h.FilePath())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	h.Close() // throttled answers end now
	if cerr := srv.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// contentSum returns the sha256 hex of the content, computed in chunks.
func contentSum(seed uint64, size int64) string {
	sum := sha256.New()
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		p := buf[:min(int64(len(buf)), size-off)]
		testserver.Pattern(seed, off, p)
		sum.Write(p)
	}
	return hex.EncodeToString(sum.Sum(nil))
}

// parseBytes parses a non-negative byte count with an optional K, M or G
// suffix (case-insensitive, binary units).
func parseBytes(s string) (int64, error) {
	num, shift := strings.TrimSpace(s), 0
	if num != "" {
		switch num[len(num)-1] {
		case 'k', 'K':
			shift = 10
		case 'm', 'M':
			shift = 20
		case 'g', 'G':
			shift = 30
		}
	}
	if shift != 0 {
		num = num[:len(num)-1]
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<63-1)>>shift {
		return 0, fmt.Errorf("invalid byte count %q", s)
	}
	return n << shift, nil
}
