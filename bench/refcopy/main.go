// Command refcopy is a limit row of bench/bench.sh S1, not a download tool:
// the least work a segmented downloader that makes its file durable must do.
// It takes the size from the URL's Content-Length, fallocates the output,
// fetches N equal ranges at once, writes each with WriteAt from a 256 KiB
// buffer, starts writeback of every finished 8 MiB with sync_file_range, and
// ends with one fdatasync. No retries, no manifest, no checks beyond a 206
// answer: any fault exits non-zero.
//
//	refcopy [-n 16] URL OUT
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

const (
	bufSize     = 256 << 10
	writebackAt = 8 << 20
)

func main() {
	n := flag.Int("n", 16, "connections")
	flag.Parse()
	if flag.NArg() != 2 || *n < 1 {
		fmt.Fprintln(os.Stderr, "usage: refcopy [-n 16] URL OUT")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), flag.Arg(1), *n); err != nil {
		fmt.Fprintln(os.Stderr, "refcopy:", err)
		os.Exit(1)
	}
}

func run(url, out string, n int) error {
	head, err := http.Head(url)
	if err != nil {
		return err
	}
	if err := head.Body.Close(); err != nil {
		return err
	}
	size := head.ContentLength
	if head.StatusCode != http.StatusOK || size <= 0 {
		return fmt.Errorf("HEAD %s: %s, length %d", url, head.Status, size)
	}
	f, err := os.OpenFile(out, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	err = copyRanges(f, url, size, n)
	if err == nil {
		err = unix.Fdatasync(int(f.Fd()))
	}
	return errors.Join(err, f.Close())
}

func copyRanges(f *os.File, url string, size int64, n int) error {
	if err := unix.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		return fmt.Errorf("fallocate: %w", err)
	}
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: n, MaxIdleConnsPerHost: n, DisableCompression: true}}
	per := (size + int64(n) - 1) / int64(n)
	var g errgroup.Group
	for start := int64(0); start < size; start += per {
		end := min(start+per, size)
		g.Go(func() error { return copyRange(client, f, url, start, end) })
	}
	return g.Wait()
}

// copyRange writes bytes [start, end) of url into f at the same offsets.
func copyRange(client *http.Client, f *os.File, url string, start, end int64) (err error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", start, end-1))
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, resp.Body.Close()) }()
	if resp.StatusCode != http.StatusPartialContent || resp.ContentLength != end-start {
		return fmt.Errorf("range %d-%d: %s, length %d", start, end-1, resp.Status, resp.ContentLength)
	}
	buf := make([]byte, bufSize)
	off, flushed := start, start
	for off < end {
		k, err := io.ReadFull(resp.Body, buf[:min(int64(len(buf)), end-off)])
		if err != nil {
			return fmt.Errorf("range %d-%d at %d: %w", start, end-1, off, err)
		}
		if _, err := f.WriteAt(buf[:k], off); err != nil {
			return err
		}
		off += int64(k)
		if off-flushed >= writebackAt || off == end {
			if err := unix.SyncFileRange(int(f.Fd()), flushed, off-flushed, unix.SYNC_FILE_RANGE_WRITE); err != nil {
				return fmt.Errorf("sync_file_range: %w", err)
			}
			flushed = off
		}
	}
	return nil
}
