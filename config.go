package convoy

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/convoy-dl/convoy/internal/redact"
	"github.com/convoy-dl/convoy/merge"
	"github.com/convoy-dl/convoy/segment"
)

// Config describes one download. The zero value of every field but URL is a
// sensible default.
type Config struct {
	// URL of the file; http or https.
	URL string
	// Mirrors are more URLs of the same file. Each is probed and compared
	// with URL (size, range support, sampled bytes); those that agree share
	// the download, and one that fails later is dropped.
	Mirrors []string
	// MaxPerHost bounds the connections to one host name when there are
	// mirrors: by default 4 with a fixed Connections; with an adaptive count
	// no bound but MaxConnections.
	MaxPerHost int
	// Output is the path to write. Empty: a name from the server
	// (Content-Disposition, else the URL path), sanitised, inside Dir.
	Output string
	// Writer, when set, receives the file in order instead of a file on disk
	// (convoy get -o -): still over many connections, with at most Buffer
	// bytes (default 64 MiB) held out of order. Such a download keeps no
	// manifest and cannot resume.
	Writer io.Writer
	Buffer int64
	// Dir is the folder for Output when Output is relative (default ".").
	Dir string
	// Connections is the number of parallel connections. 0 (the default)
	// lets convoy choose, per server: it starts with a few, adds connections
	// while each added one raises that server's throughput, gives back those
	// the throughput does not miss, and drops those the server refuses (503
	// or 429), never more than MaxConnections in all (see segment.Source).
	Connections int
	// MaxConnections bounds the adaptive count over all servers (default
	// DefaultMaxConnections); unused with a fixed Connections.
	MaxConnections int
	// MinSplitSize is the smallest range worth a connection of its own
	// (default 1 MiB).
	MinSplitSize int64
	// Header holds extra request headers, e.g. Authorization or Cookie. They
	// are not sent to a host other than the one in URL after a redirect.
	Header http.Header
	// UserAgent replaces the default "convoy/VERSION".
	UserAgent string
	// Insecure skips TLS certificate verification.
	Insecure bool
	// RootCAs, when set, replaces the system's certificate authorities
	// (a private CA).
	RootCAs *x509.CertPool
	// AllowDowngrade lets a redirect lead from https to plain http.
	AllowDowngrade bool
	// Proxy, when set, carries every request, to http and https servers and
	// to loopback ones alike: a URL with scheme http (taken when it has
	// none), https, socks5 (names resolved here) or socks5h (names resolved
	// by the proxy), and the user name and password the proxy wants, if
	// any. Empty: HTTP_PROXY and HTTPS_PROXY from the environment (see
	// segment.ClientOptions). It is never written to the manifest, and its
	// password never shown.
	Proxy string
	// NoProxy lists the hosts reached without a proxy, as curl reads
	// NO_PROXY: host names with their subdomains, IP addresses, CIDR
	// ranges, "*" for all (see segment.ClientOptions). Empty: NO_PROXY from
	// the environment; "," overrides it with no exception at all.
	NoProxy string
	// Checksum, "ALGO:HEX" or "ALGO=BASE64" (md5, sha1, sha256, sha512), is
	// the digest the file must have; it is computed while the download runs.
	// Without it a digest the server sends (Repr-Digest, Digest) is checked.
	Checksum string
	// Digest names an algorithm (md5, sha1, sha256, sha512) whose digest of
	// the file is computed while it downloads and reported in
	// Result.Checksum, when no checksum is known to compare with.
	Digest string
	// ChecksumFile, a path or an http(s) URL of a list such as SHA256SUMS,
	// gives the digest on the line for the output's name.
	ChecksumFile string
	// RemoveOnError deletes the bytes of a download whose checksum does not
	// match, instead of keeping them in the part file.
	RemoveOnError bool
	// Restart discards a partial download instead of resuming it.
	Restart bool
	// Overwrite replaces an existing Output; without it an existing file is an
	// error.
	Overwrite bool
	// LimitRate caps the download at this many bytes per second over all
	// connections together (0: no limit).
	LimitRate int64
	// StallTimeout turns a connection that receives nothing for this long into
	// a retry (default 20s).
	StallTimeout time.Duration
	// MaxTries bounds the consecutive attempts of one range that make no
	// progress. 0: no bound on a download that can resume (RetryFor bounds
	// it in time), 10 on one that cannot and on a mirror; < 0: no bound.
	MaxTries int
	// RetryFor is how long a download that can resume may go without
	// progress on any connection before it gives up (default
	// DefaultRetryFor; < 0: no time bound, MaxTries alone). An outage of
	// minutes, a laptop asleep, a server restarting, do not end it.
	RetryFor time.Duration
	// RetryConnRefused retries a server that cannot be reached (connection
	// refused, no such host, no route) at first contact too. Without it, a
	// run that starts a download (not a resume) fails at once on those:
	// most likely a typo. Once a download is under way, or resumed, they
	// are always retried.
	RetryConnRefused bool
	// RetryInitial and RetryMax shape the exponential backoff between tries
	// (defaults 500ms and 30s).
	RetryInitial, RetryMax time.Duration
	// CheckpointInterval is the longest time between two checkpoints, which
	// make progress durable (default DefaultCheckpointInterval). A
	// checkpoint also comes sooner, once a MiB written is in none, but no
	// sooner than a tenth of the interval after the last one.
	CheckpointInterval time.Duration
	// Client replaces the HTTP client convoy builds (for tests and embedding).
	Client *http.Client
	// OnProgress, if set, is called from one goroutine every
	// ProgressInterval (default 250ms) and once at the end.
	OnProgress       func(Progress)
	ProgressInterval time.Duration
	// OnEvent, if set, receives every step of the download as an Event, one
	// call at a time (progress at ProgressInterval).
	OnEvent func(Event)
	// RetryNotice, if set, receives the retry notices instead of Logf: the
	// first of a cause, its count now and then, the repeats at the end. A
	// display can show the latest on one line that it updates.
	RetryNotice func(notice string)
	// Verbose passes every retry to Logf, even a reconnect that cost nothing
	// (a connection cut while it delivered, picking up at once); without it
	// those are only counted (Result.Retries) and sent as retry events.
	Verbose bool
	// Logf, if set, receives notices meant for people: retries, restarts,
	// resumes. Secrets are already redacted.
	Logf func(format string, args ...any)

	// Metalink, a path or an http(s) URL of a Metalink document (RFC 5854,
	// or Metalink 3), describes the file instead of URL: its name inside
	// Dir (unless Output is set), its size, its strongest hash (unless
	// Checksum or ChecksumFile is set) and its addresses, the first as URL
	// and the others as Mirrors. Download takes a document of one file;
	// Metalinks returns a Config for each file of any document.
	Metalink string
	// MetalinkLocation lists country codes (ISO 3166-1, "de", "fr") whose
	// servers are tried first, in this order; then the documents'
	// priorities decide.
	MetalinkLocation []string
	// Discover uses what the server tells of its mirror network (RFC
	// 6249): the mirrors its Link headers name (rel=duplicate), and the
	// Metalink they point at (rel=describedby), fetched once, for more
	// mirrors and the file's hash. A URL whose answer is a Metalink
	// document is downloaded as the file it describes. The command line
	// turns it on unless --no-discover is given.
	Discover bool

	// meta is what a Metalink said of the file, set by Metalinks.
	meta *metaFile
	// checked, set by Repair, is its check of the file that became the
	// part file; onAdopt, if set, learns which pieces a part file without
	// a manifest kept.
	checked *checkedPieces
	onAdopt func(p merge.Pieces, good []bool)
}

// Progress is a snapshot of a running download.
type Progress struct {
	// Output is the file written ("-" for Config.Writer), as in Result.Path.
	Output string
	// Size is the file size, -1 when unknown.
	Size int64
	// Done counts bytes on disk, including those from earlier runs.
	Done int64
	// Elapsed is the time since Download started.
	Elapsed time.Duration
	// Connections says what each connection is doing.
	Connections []ConnProgress
}

// ConnProgress is what one connection is doing: its server, speed and range.
type ConnProgress = segment.ConnState

// Result describes a finished download.
type Result struct {
	// Path is the final file ("-" for Config.Writer). After an error it is
	// the file the download was for, "" when that was not known yet.
	Path string
	// Size is its length in bytes.
	Size int64
	// Resumed counts bytes that were already on disk from earlier runs.
	Resumed int64
	// Fetched counts bytes received and written by this run.
	Fetched int64
	// Retries counts failed attempts that were tried again.
	Retries int64
	// Connections is the number of connections that fetched bytes.
	Connections int
	// Twice counts bytes this run received more than once: answers cut short
	// when their range was split, streams that started over.
	Twice int64
	// Cuts counts answers cut short to share their range with an idle
	// connection; what their servers had sent past the cut was wasted.
	Cuts int
	// Restarts counts the times the download started over because the file
	// changed on the server.
	Restarts int
	// Refetched counts the pieces fetched again because they did not match
	// their hashes (a Metalink's piece hashes), or no longer did on disk.
	Refetched int
	// Checksum is the file's digest as "ALGO:HEX" when one was verified or
	// computed ("" for none); Verified tells which.
	Checksum string
	Verified bool
	// AlreadyComplete is set when an earlier run had finished the file and
	// only its bookkeeping was left.
	AlreadyComplete bool
	// Elapsed is the wall time of Download.
	Elapsed time.Duration
}

// DefaultVersion is Version when the build did not stamp one.
const DefaultVersion = "0.1.0-dev"

// Version is convoy's version, sent in the default User-Agent; builds set it
// with -ldflags "-X github.com/convoy-dl/convoy.Version=...".
var Version = DefaultVersion

// DefaultCheckpointInterval is the longest time between checkpoints unless
// the Config says otherwise. A kill loses at most about this much download
// time, and on a link faster than a MiB per interval about a MiB (bench
// S4); with writeback started as regions finish, a checkpoint costs almost
// nothing (bench S8).
const DefaultCheckpointInterval = 250 * time.Millisecond

// DefaultRetryFor is Config.RetryFor unless set: the time without progress
// after which a resumable download gives up.
const DefaultRetryFor = 5 * time.Minute

// defaultMaxTries bounds the tries without progress of a download that
// cannot resume, and of a mirror among others, unless MaxTries says.
const defaultMaxTries = 10

// MaxConnections bounds Config.Connections and Config.MaxConnections.
const MaxConnections = 128

// DefaultMaxConnections is Config.MaxConnections unless set: the most
// connections an adaptive count opens in all.
const DefaultMaxConnections = 32

// ErrUsage marks errors in the Config itself.
var ErrUsage = errors.New("invalid configuration")

// CheckURL says why raw cannot be downloaded from, or returns nil: it must
// be an http or https URL with a host, and its port, if it has one, a number
// from 1 to 65535. The error's text starts with raw, its
// secrets redacted, ended by a space or a quote (redact.Text would take any
// other character for part of the URL).
func CheckURL(raw string) error {
	if raw == "" {
		return errors.New(`"" is not a URL`)
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the unredacted URL
		}
		return fmt.Errorf("%q is not a URL: %v", redact.URL(raw), err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%s is not an http or https URL", redact.Parsed(u))
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%s has no host", redact.Parsed(u))
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%s has port %s; a port is a number from 1 to 65535", redact.Parsed(u), p)
		}
	}
	return nil
}

// CheckProxy says why raw cannot serve as Config.Proxy, or returns nil:
// see segment.ParseProxy. The error's text shows raw with its secrets
// redacted.
func CheckProxy(raw string) error {
	_, err := segment.ParseProxy(raw)
	return err
}

func (c Config) withDefaults() (Config, error) {
	if c.Metalink != "" {
		return c, fmt.Errorf("%w: a Metalink must be expanded by Metalinks first", ErrUsage)
	}
	if err := CheckURL(c.URL); err != nil {
		return c, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if c.Connections < 0 || c.Connections > MaxConnections {
		return c, fmt.Errorf("%w: connections must be between 1 and %d, not %d", ErrUsage, MaxConnections, c.Connections)
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.MaxConnections < 1 || c.MaxConnections > MaxConnections {
		return c, fmt.Errorf("%w: --max-connections must be between 1 and %d, not %d", ErrUsage, MaxConnections, c.MaxConnections)
	}
	for _, m := range c.Mirrors {
		if err := CheckURL(m); err != nil {
			return c, fmt.Errorf("%w: mirror %w", ErrUsage, err)
		}
	}
	if c.Proxy != "" {
		if err := CheckProxy(c.Proxy); err != nil {
			return c, fmt.Errorf("%w: %w", ErrUsage, err)
		}
	}
	if c.MaxPerHost == 0 && c.Connections > 0 {
		c.MaxPerHost = 4
	}
	if c.MaxPerHost < 0 {
		return c, fmt.Errorf("%w: --max-per-host must be at least 1", ErrUsage)
	}
	if c.MinSplitSize == 0 {
		c.MinSplitSize = 1 << 20
	}
	if c.MinSplitSize < 0 {
		return c, fmt.Errorf("%w: negative minimum split size", ErrUsage)
	}
	if c.Checksum != "" {
		if _, err := merge.ParseChecksum(c.Checksum); err != nil {
			return c, fmt.Errorf("%w: %v", ErrUsage, err)
		}
	}
	if c.LimitRate < 0 {
		return c, fmt.Errorf("%w: negative rate limit", ErrUsage)
	}
	if c.Buffer == 0 {
		c.Buffer = 64 << 20
	}
	if c.Buffer < 0 {
		return c, fmt.Errorf("%w: negative buffer", ErrUsage)
	}
	if c.Dir == "" {
		c.Dir = "."
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = 20 * time.Second
	}
	if c.RetryFor == 0 {
		c.RetryFor = DefaultRetryFor
	}
	if c.CheckpointInterval <= 0 {
		c.CheckpointInterval = DefaultCheckpointInterval
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = 250 * time.Millisecond
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	h := c.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	if c.UserAgent != "" {
		h.Set("User-Agent", c.UserAgent)
	} else if h.Get("User-Agent") == "" {
		h.Set("User-Agent", "convoy/"+Version)
	}
	c.Header = h
	return c, nil
}
