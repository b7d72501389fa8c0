package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/fsx"
	"github.com/convoy-dl/convoy/internal/redact"
	"github.com/convoy-dl/convoy/internal/units"
)

func getCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "get",
		Usage:     "download URL to a file (more URLs of the same file are mirrors)",
		ArgsUsage: "URL [MIRROR...]",
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write to `FILE` (default: the server's name for it); - streams to stdout"},
			&cli.StringFlag{Name: "buffer", Usage: "with -o -, the most bytes held out of order (K, M, G suffixes)", Value: "64M"},
			&cli.StringFlag{Name: "dir", Aliases: []string{"d"}, Usage: "save into `DIR`", Value: "."},
			&cli.IntFlag{Name: "connections", Aliases: []string{"n"}, Usage: "exactly `N` parallel connections (default: convoy chooses per server, up to --max-connections)"},
			&cli.IntFlag{Name: "max-connections", Usage: "without -n, the most connections in all", Value: convoy.DefaultMaxConnections},
			&cli.StringFlag{Name: "min-split-size", Usage: "smallest range worth its own connection (K, M, G suffixes)", Value: "1M"},
			&cli.StringFlag{Name: "limit-rate", Usage: "cap the total speed at `RATE` bytes per second (K, M, G suffixes; 0 for no limit)"},
			&cli.StringFlag{Name: "checksum", Usage: "verify the file against `ALGO:HEX` (md5, sha1, sha256, sha512; also sha-256=BASE64)"},
			&cli.StringFlag{Name: "checksum-file", Usage: "take the digest from the line for the output's name in `PATH|URL` (SHA256SUMS style)"},
			&cli.BoolFlag{Name: "remove-on-error", Usage: "delete the bytes of a download whose checksum does not match"},
			&cli.BoolFlag{Name: "restart", Usage: "discard a partial download and start over"},
			&cli.BoolFlag{Name: "continue", Aliases: []string{"c"}, Usage: "resume a partial download (what convoy always does; accepted for wget and aria2 habits)"},
			&cli.BoolFlag{Name: "overwrite", Usage: "replace an existing output file"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing but errors"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "print every retry, even a reconnect that cost nothing (those are otherwise only counted)"},
			&cli.BoolFlag{Name: "json", Usage: "print events as JSON lines on stdout (see README)"},
			&cli.StringFlag{Name: "input-file", Aliases: []string{"i"}, Usage: "download every URL listed in `FILE` (one a line, aria2 style; - for stdin)"},
			&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Usage: "with -i, downloads at a time", Value: 1},
			&cli.StringFlag{Name: "mirror-file", Usage: "more URLs of the same file, one a line, in `FILE`"},
			&cli.IntFlag{Name: "max-per-host", Aliases: []string{"x"}, Usage: "with mirrors, connections to one host at most (default: 4 with -n, else only --max-connections)"},
			&cli.StringFlag{Name: "metalink", Usage: "download the files the Metalink at `FILE|URL` describes (.meta4, or Metalink 3), from its mirrors, verified by its hashes"},
			&cli.StringFlag{Name: "metalink-location", Usage: "with a Metalink, try servers in these countries first, in order (`LIST` of ISO 3166 codes: de,fr)"},
			&cli.BoolFlag{Name: "no-discover", Usage: "ignore the mirrors and the Metalink a server names in Link headers, and download a Metalink URL as it is"},
			&cli.StringSliceFlag{Name: "header", Aliases: []string{"H"}, Usage: "extra request header `'Name: value'` (repeatable)"},
			&cli.StringFlag{Name: "user-agent", Usage: "User-Agent header (default: convoy/VERSION, or the one given with -H)"},
			&cli.BoolFlag{Name: "insecure", Usage: "do NOT verify TLS certificates (anyone on the path can then forge the file)"},
			&cli.StringFlag{Name: "ca-cert", Usage: "trust the certificate authorities in PEM `FILE` instead of the system's"},
			&cli.BoolFlag{Name: "allow-downgrade", Usage: "follow redirects from https to plain http"},
			&cli.StringFlag{Name: "proxy", Usage: "send every request through the proxy at `URL` (http://, https://, socks5://, socks5h://; user:password@ if it wants them); '' for none"},
			&cli.StringFlag{Name: "noproxy", Usage: "reach the hosts in `LIST` without the proxy (comma-separated names, addresses, CIDRs; * for all)"},
			&cli.DurationFlag{Name: "stall-timeout", Usage: "retry a connection that receives nothing for this long", Value: 20 * time.Second},
			&cli.IntFlag{Name: "max-tries", Usage: "tries of one range without progress before giving up; 0 for no bound (default: none while --retry-for runs, 10 for a download that cannot resume)"},
			&cli.DurationFlag{Name: "retry-for", Usage: "how long a download that can resume waits out an outage without progress before giving up; 0 for --max-tries alone", Value: convoy.DefaultRetryFor},
			&cli.BoolFlag{Name: "retry-connrefused", Usage: "retry a server that refuses connections or does not resolve, even before the download began (by default that fails at once)"},
			&cli.DurationFlag{Name: "checkpoint-interval", Usage: "the longest time between two checkpoints of progress (one also comes after each MiB written)", Value: convoy.DefaultCheckpointInterval},
		},
		Action: func(c *cli.Context) error { return get(c, stdout, stderr) },
	}
}

func get(c *cli.Context, stdout, stderr io.Writer) error {
	batch := c.String("input-file")
	meta := c.String("metalink")
	if meta == "" && batch == "" && c.NArg() == 1 && convoy.IsMetalinkName(c.Args().First()) {
		meta = metalinkSource(c.Args().First()) // convoy get FILE.meta4, or URL.meta4
	}
	switch {
	case batch != "" && c.NArg() != 0:
		return usagef("give URLs either on the command line or with --input-file, not both")
	case meta != "" && (batch != "" || c.NArg() > 1 || c.NArg() == 1 && c.String("metalink") != ""):
		return usagef("give either a Metalink or URLs (or --input-file), not both")
	case batch == "" && meta == "" && c.NArg() == 0:
		return usagef("get takes a URL (and optionally mirrors of the same file); see 'convoy get --help'")
	}
	json := c.Bool("json")
	out := newReporter(stderr, c.Bool("quiet"), terminal(stderr, !json))
	cfg, err := configFromFlags(c, out)
	if err != nil {
		return err
	}
	var events *eventWriter
	if json {
		events = newEventWriter(stdout)
		cfg.ProgressInterval = 500 * time.Millisecond
		cfg.OnEvent = events.write
		cfg.Digest = "sha256" // the done event carries the file's SHA-256
	}
	if batch != "" {
		all := cfg
		all.Connections = connectionsAtMost(cfg) * c.Int("jobs") // downloads at once
		limitMemory(&all)
		return runBatch(c.Context, batch, c.Int("jobs"), cfg, out, events)
	}
	if meta != "" {
		if err := toStdout(c, &cfg, stdout, json); err != nil {
			return err
		}
		cfg.Metalink = meta
		return runMetalink(c.Context, cfg, c.Int("jobs"), out, events)
	}
	urls := c.Args().Slice()
	for i, u := range urls {
		// As curl does, an address without a scheme is taken as http.
		if withHTTP, changed := withScheme(u); changed {
			out.logf("%s has no scheme: using %s", u, withHTTP)
			urls[i] = withHTTP
		}
		if err := convoy.CheckURL(urls[i]); err != nil {
			if i > 0 {
				return usagef("mirror %v", err)
			}
			return usagef("%v", err)
		}
	}
	cfg.URL = urls[0]
	cfg.Mirrors = append(cfg.Mirrors, urls[1:]...)
	if err := toStdout(c, &cfg, stdout, json); err != nil {
		return err
	}
	limitMemory(&cfg)
	_, err = runOne(c.Context, cfg, out, out, events)
	if errors.Is(err, convoy.ErrSeveralFiles) {
		// The URL answered with a Metalink of several files: a batch.
		cfg.URL, cfg.Mirrors, cfg.Metalink = "", nil, cfg.URL
		return runMetalink(c.Context, cfg, c.Int("jobs"), out, events)
	}
	return err
}

// toStdout sets cfg up to stream to stdout for -o -.
func toStdout(c *cli.Context, cfg *convoy.Config, stdout io.Writer, json bool) error {
	if cfg.Output != "-" {
		return nil
	}
	if json {
		return usagef("-o - and --json both want stdout")
	}
	buffer, err := units.ParseSize(c.String("buffer"))
	if err != nil {
		return usagef("--buffer: %v", err)
	}
	cfg.Output, cfg.Writer, cfg.Buffer = "", stdout, buffer
	return nil
}

// metalinkSource is the path or URL of a Metalink given as get's argument:
// an existing file, else a URL (http:// when it has no scheme, as for any
// URL).
func metalinkSource(arg string) string {
	if strings.Contains(arg, "://") {
		return arg
	}
	if _, err := os.Stat(arg); err == nil {
		return arg
	}
	u, _ := withScheme(arg)
	return u
}

// runMetalink downloads the files of the Metalink cfg names: one as a
// single download, several as a batch, jobs at a time.
func runMetalink(ctx context.Context, cfg convoy.Config, jobs int, out *reporter, events *eventWriter) error {
	cfgs, err := convoy.Metalinks(ctx, cfg)
	if err != nil {
		return err
	}
	if len(cfgs) == 1 {
		_, err := runOne(ctx, cfgs[0], out, out, events)
		return err
	}
	tasks := make([]batchTask, len(cfgs))
	for i, c := range cfgs {
		tasks[i] = batchTask{label: c.Output, cfg: c}
	}
	return runTasks(ctx, tasks, jobs, out, events)
}

// configFromFlags builds the Config the options describe, without a URL.
func configFromFlags(c *cli.Context, out *reporter) (convoy.Config, error) {
	minSplit, err := units.ParseSize(c.String("min-split-size"))
	if err != nil {
		return convoy.Config{}, usagef("--min-split-size: %v", err)
	}
	var limit int64
	if v := strings.TrimSpace(c.String("limit-rate")); v != "" && v != "0" { // 0: no limit, as curl and aria2 read it
		if limit, err = units.ParseSize(v); err != nil {
			return convoy.Config{}, usagef("--limit-rate: %v", err)
		}
	}
	header, err := parseHeaders(c.StringSlice("header"))
	if err != nil {
		return convoy.Config{}, err
	}
	if n := c.Int("connections"); c.IsSet("connections") && (n < 1 || n > convoy.MaxConnections) {
		return convoy.Config{}, usagef("--connections must be between 1 and %d", convoy.MaxConnections)
	}
	if n := c.Int("max-connections"); n < 1 || n > convoy.MaxConnections {
		return convoy.Config{}, usagef("--max-connections must be between 1 and %d", convoy.MaxConnections)
	}
	if j := c.Int("jobs"); c.IsSet("jobs") && (j < 1 || j > 64) { // unset: 1, or no such option (repair)
		return convoy.Config{}, usagef("--jobs must be between 1 and 64")
	}
	// 0 would mean "the default" to convoy.Config; on the command line it
	// is a mistake, as is anything negative.
	if c.IsSet("max-per-host") && c.Int("max-per-host") < 1 {
		return convoy.Config{}, usagef("--max-per-host must be at least 1")
	}
	maxTries := c.Int("max-tries")
	switch {
	case maxTries < 0:
		return convoy.Config{}, usagef("--max-tries must be 0 (no bound) or more")
	case maxTries == 0 && c.IsSet("max-tries"):
		maxTries = -1 // no bound, as aria2 and wget read 0
	}
	retryFor := c.Duration("retry-for")
	switch {
	case retryFor < 0:
		return convoy.Config{}, usagef("--retry-for must be 0 (tries alone) or a duration, such as 5m")
	case retryFor == 0:
		retryFor = -1 // --max-tries alone
	}
	for _, name := range []string{"stall-timeout", "checkpoint-interval"} {
		if c.Duration(name) <= 0 {
			return convoy.Config{}, usagef("--%s must be a duration above zero, such as 20s or 250ms", name)
		}
	}
	// As with curl: --proxy '' turns the environment's proxies off, and
	// --noproxy '' its NO_PROXY.
	proxy, noProxy := c.String("proxy"), c.String("noproxy")
	switch {
	case proxy != "":
		if err := convoy.CheckProxy(proxy); err != nil {
			return convoy.Config{}, usagef("--proxy: %v", err)
		}
	case c.IsSet("proxy"):
		noProxy = "*"
	}
	if noProxy == "" && c.IsSet("noproxy") {
		noProxy = ","
	}
	roots, err := loadCAs(c.String("ca-cert"))
	if err != nil {
		return convoy.Config{}, err
	}
	if c.Bool("insecure") {
		out.logf("warning: --insecure: TLS certificates are not verified; a man in the middle can forge what you download")
	}
	var mirrors []string
	if path := c.String("mirror-file"); path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return convoy.Config{}, usagef("--mirror-file: %v", fsx.Plain(err))
		}
		for _, line := range strings.Split(string(data), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				if err := convoy.CheckURL(line); err != nil {
					return convoy.Config{}, usagef("--mirror-file %s: mirror %v", path, err)
				}
				mirrors = append(mirrors, line)
			}
		}
	}
	var locations []string
	for _, l := range strings.Split(c.String("metalink-location"), ",") {
		if l = strings.ToLower(strings.TrimSpace(l)); l != "" {
			locations = append(locations, l)
		}
	}
	return convoy.Config{
		Mirrors:            mirrors,
		MaxPerHost:         c.Int("max-per-host"),
		Output:             c.String("output"),
		Dir:                c.String("dir"),
		Connections:        c.Int("connections"),
		MaxConnections:     c.Int("max-connections"),
		MinSplitSize:       minSplit,
		Header:             header,
		UserAgent:          c.String("user-agent"),
		Insecure:           c.Bool("insecure"),
		RootCAs:            roots,
		AllowDowngrade:     c.Bool("allow-downgrade"),
		Proxy:              proxy,
		NoProxy:            noProxy,
		Checksum:           c.String("checksum"),
		ChecksumFile:       c.String("checksum-file"),
		RemoveOnError:      c.Bool("remove-on-error"),
		LimitRate:          limit,
		Restart:            c.Bool("restart"),
		Overwrite:          c.Bool("overwrite"),
		StallTimeout:       c.Duration("stall-timeout"),
		MaxTries:           maxTries,
		RetryFor:           retryFor,
		RetryConnRefused:   c.Bool("retry-connrefused"),
		Verbose:            c.Bool("verbose"),
		CheckpointInterval: c.Duration("checkpoint-interval"),
		Logf:               out.logf,
		RetryNotice:        out.retried,
		MetalinkLocation:   locations,
		Discover:           !c.Bool("no-discover"),
	}, nil
}

// runOne downloads one file, showing its progress in v, its summary in out
// and, with --json, its events.
func runOne(ctx context.Context, cfg convoy.Config, out *reporter, v view, events *eventWriter) (convoy.Result, error) {
	cfg.OnProgress = v.progress
	res, err := convoy.Download(ctx, cfg)
	v.finish(err == nil)
	if errors.Is(err, convoy.ErrSeveralFiles) {
		return res, err // not a failure: the caller runs the files as a batch
	}
	if err != nil {
		events.write(convoy.Event{Type: "error", URL: redact.URL(cfg.URL), Output: res.Path, Error: redact.Text(err.Error())})
		return res, err
	}
	var rate float64
	if s := res.Elapsed.Seconds(); s > 0 {
		rate = float64(res.Fetched) / s
	}
	events.write(convoy.Event{Type: "done", URL: redact.URL(cfg.URL), Output: res.Path, Size: res.Size, Done: res.Size,
		Elapsed: res.Elapsed.Seconds(), Rate: rate, Fetched: res.Fetched, Retries: res.Retries, Cuts: res.Cuts, Checksum: res.Checksum, Refetched: res.Refetched})
	out.summary(res)
	return res, nil
}

// eventWriter prints events as JSON lines, one at a time; a nil
// eventWriter prints nothing.
type eventWriter struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func newEventWriter(w io.Writer) *eventWriter { return &eventWriter{enc: json.NewEncoder(w)} }

func (e *eventWriter) write(ev convoy.Event) {
	if e == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_ = e.enc.Encode(ev) // stdout gone: nothing left to tell
}

// parseHeaders reads "Name: value" strings.
func parseHeaders(lines []string) (http.Header, error) {
	h := http.Header{}
	for _, l := range lines {
		name, value, ok := strings.Cut(l, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t\r\n") || strings.ContainsAny(value, "\r\n") {
			return nil, usagef("--header %q: want 'Name: value'", l)
		}
		h.Add(name, strings.TrimSpace(value))
	}
	return h, nil
}

// terminal returns the size of the terminal w is on when want is set and
// w is one, else nil.
func terminal(w io.Writer, want bool) func() (cols, rows int) {
	f, ok := w.(*os.File)
	if !want || !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return terminalSize(f)
}

// loadCAs reads a PEM bundle of certificate authorities; "" means the
// system's.
func loadCAs(path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("--ca-cert: %v", fsx.Plain(err))
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, usagef("--ca-cert: %s holds no PEM certificate", path)
	}
	return pool, nil
}
