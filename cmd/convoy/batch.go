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
	var tasks []batchTask
	for _, j := range list {
		cfg := base
		cfg.URL = j.url
		if j.dir != "" {
			cfg.Dir = j.dir
		}
		cfg.Output = j.out
		if j.checksum != "" {
			cfg.Checksum = j.checksum
		}
		label := fmt.Sprintf("line %d", j.line)
		if convoy.IsMetalinkName(j.url) && len(j.mirrors) == 0 {
			// A metalink stands for the files it describes.
			cfg.URL, cfg.Metalink = "", j.url
			cfgs, err := convoy.Metalinks(ctx, cfg)
			if err != nil {
				tasks = append(tasks, batchTask{label: label, failed: err, cfg: cfg})
				continue
			}
			for _, c := range cfgs {
				tasks = append(tasks, batchTask{label: fmt.Sprintf("%s (%s)", label, c.Output), cfg: c})
			}
			continue
		}
		cfg.Mirrors = append(append([]string(nil), base.Mirrors...), j.mirrors...)
		tasks = append(tasks, batchTask{label: label, cfg: cfg})
	}
	return runTasks(ctx, tasks, jobs, out, events)
}

// batchTask is one download of a batch: label names it in failures (its line
// of the input file, say); failed, when set, is the error that prevented
// it.
type batchTask struct {
	label  string
	cfg    convoy.Config
	failed error
}

// runTasks runs tasks, jobs at a time, then prints a summary; it fails if
// any download failed.
func runTasks(ctx context.Context, tasks []batchTask, jobs int, out *reporter, events *eventWriter) error {
	var (
		mu       sync.Mutex
		failures []string
		complete int // already complete before this run
	)
	fail := func(tk batchTask, err error) {
		mu.Lock()
		defer mu.Unlock()
		what := tk.cfg.URL
		if what == "" {
			what = tk.cfg.Metalink
		}
		failures = append(failures, fmt.Sprintf("%s: %s: %s", tk.label, redact.URL(what), redact.Text(err.Error())))
	}
	g := new(errgroup.Group) // failures are collected, not fatal to the others
	g.SetLimit(jobs)
	out.startBatch(len(tasks))
	for _, tk := range tasks {
		g.Go(func() error {
			cfg := tk.cfg
			name := cfg.Output
			if name == "" {
				name = convoy.RemoteName("", cfg.URL) // until the server names it
			}
			v := out.startJob(name, cfg.Dir)
			if tk.failed != nil {
				v.finish(false)
				fail(tk, tk.failed)
				return nil
			}
			if cfg.Output != "" {
				// A name with folders in it lands in them, inside the folder.
				if sub := filepath.Dir(cfg.Output); sub != "." && !filepath.IsAbs(cfg.Output) {
					if err := fsx.MkdirAll(filepath.Join(cfg.Dir, sub), 0o755); err != nil {
						v.finish(false)
						fail(tk, err)
						return nil
					}
				}
			}
			res, err := runOne(ctx, cfg, out, v, events)
			if err != nil {
				fail(tk, err)
				return nil
			}
			if res.AlreadyComplete {
				mu.Lock()
				complete++
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait() // every job returns nil; failures are listed above
	out.endBatch()
	summary := fmt.Sprintf("batch: %d of %d downloads succeeded", len(tasks)-len(failures), len(tasks))
	if complete > 0 {
		summary += fmt.Sprintf(" (%d already complete)", complete)
	}
	out.logf("%s", summary)
	if len(failures) > 0 {
		for _, f := range failures {
			out.errorf("failed: %s", f)
		}
		return fmt.Errorf("%d of %d downloads failed", len(failures), len(tasks))
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
