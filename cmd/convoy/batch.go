package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/fsx"
	"github.com/convoy-dl/convoy/internal/redact"
	"github.com/convoy-dl/convoy/merge"
)

// job is one download of an input file.
type job struct {
	line     int // where it starts in the file
	url      string
	mirrors  []string
	out      string // relative to dir, checked by convoy.CheckRelativeName
	outLine  int    // where out= is
	dir      string
	checksum string
}

// maxInputLine bounds one line of an input file.
const maxInputLine = 64 << 10

// parseInputFile reads an aria2-style list: a line with a URL (further
// URLs of the same file after it, separated by tabs, are mirrors) starts a
// job; indented "key=value" lines that follow set its options: out, dir,
// checksum. Blank lines and lines starting with '#' are skipped. A URL that
// checkURL refuses, an out= name that leads out of its folder and a
// checksum= that does not parse are errors naming their line.
func parseInputFile(r io.Reader) ([]job, error) {
	var jobs []job
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxInputLine)
	for n := 1; sc.Scan(); n++ {
		raw := sc.Text()
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if raw[0] == ' ' || raw[0] == '\t' {
			if len(jobs) == 0 {
				return nil, fmt.Errorf("line %d: an option before any URL", n)
			}
			key, value, ok := strings.Cut(line, "=")
			if !ok {
				return nil, fmt.Errorf("line %d: want key=value, got %q", n, line)
			}
			j := &jobs[len(jobs)-1]
			switch strings.TrimSpace(key) {
			case "out":
				j.out = strings.TrimSpace(value)
				if err := convoy.CheckRelativeName(j.out); err != nil {
					return nil, fmt.Errorf("line %d: out=: %v", n, err)
				}
				j.outLine = n
			case "dir":
				j.dir = strings.TrimSpace(value)
			case "checksum":
				j.checksum = strings.TrimSpace(value)
				if _, err := merge.ParseChecksum(j.checksum); err != nil {
					return nil, fmt.Errorf("line %d: checksum=: %v", n, err)
				}
			default:
				return nil, fmt.Errorf("line %d: unknown option %q (known: out, dir, checksum)", n, key)
			}
			continue
		}
		urls := strings.Fields(line)
		for i, u := range urls {
			if err := convoy.CheckURL(u); err != nil {
				if i > 0 {
					return nil, fmt.Errorf("line %d: mirror %v", n, err)
				}
				return nil, fmt.Errorf("line %d: %v", n, err)
			}
		}
		jobs = append(jobs, job{line: n, url: urls[0], mirrors: urls[1:]})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return jobs, nil
}

// runBatch downloads every job of the input file at path, jobs at a time,
// then prints a summary; it fails if any download failed.
func runBatch(ctx context.Context, path string, jobs int, base convoy.Config, out *reporter, events *eventWriter) error {
	list, err := readInputFile(path)
	if err != nil {
		return usagef("--input-file %s: %v", path, err)
	}
	if len(list) == 0 {
		return usagef("--input-file %s lists no URL", path)
	}
	if base.Output != "" {
		return usagef("-o names one file; give each URL of --input-file its own out= line")
	}
	// Two out= lines naming one file would have one download take the
	// other's file.
	named := map[string]int{}
	for _, j := range list {
		if j.out == "" {
			continue
		}
		dir := base.Dir
		if j.dir != "" {
			dir = j.dir
		}
		target := filepath.Join(dir, j.out)
		if first, ok := named[target]; ok {
			return usagef("--input-file %s: lines %d and %d both save to %s", path, first, j.outLine, target)
		}
		named[target] = j.outLine
	}
	var (
		mu       sync.Mutex
		failures []string
		complete int // already complete before this run
	)
	g := new(errgroup.Group) // failures are collected, not fatal to the others
	g.SetLimit(jobs)
	out.startBatch(len(list))
	for _, j := range list {
		g.Go(func() error {
			cfg := base
			cfg.URL = j.url
			if j.dir != "" {
				cfg.Dir = j.dir
			}
			name := j.out
			if name == "" {
				name = convoy.RemoteName("", j.url) // until the server names it
			}
			v := out.startJob(name, cfg.Dir)
			if j.out != "" {
				// A name with folders in it lands in them, inside the folder.
				cfg.Output = j.out
				if sub := filepath.Dir(j.out); sub != "." {
					if err := fsx.MkdirAll(filepath.Join(cfg.Dir, sub), 0o755); err != nil {
						v.finish(false)
						mu.Lock()
						defer mu.Unlock()
						failures = append(failures, fmt.Sprintf("line %d: %s", j.line, redact.Text(err.Error())))
						return nil
					}
				}
			}
			if j.checksum != "" {
				cfg.Checksum = j.checksum
			}
			cfg.Mirrors = append(append([]string(nil), base.Mirrors...), j.mirrors...)
			res, err := runOne(ctx, cfg, out, v, events)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failures = append(failures, fmt.Sprintf("line %d: %s: %s", j.line, redact.URL(j.url), redact.Text(err.Error())))
			} else if res.AlreadyComplete {
				complete++
			}
			return nil
		})
	}
	_ = g.Wait() // every job returns nil; failures are listed above
	out.endBatch()
	summary := fmt.Sprintf("batch: %d of %d downloads succeeded", len(list)-len(failures), len(list))
	if complete > 0 {
		summary += fmt.Sprintf(" (%d already complete)", complete)
	}
	out.logf("%s", summary)
	if len(failures) > 0 {
		for _, f := range failures {
			out.errorf("failed: %s", f)
		}
		return fmt.Errorf("%d of %d downloads failed", len(failures), len(list))
	}
	return nil
}

// readInputFile parses the list at path ("-" for stdin).
func readInputFile(path string) ([]job, error) {
	if path == "-" {
		return parseInputFile(os.Stdin)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fsx.Plain(err)
	}
	list, err := parseInputFile(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return list, fsx.Plain(err)
}
