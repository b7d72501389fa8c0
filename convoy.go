package convoy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/time/rate"

	"github.com/convoy-dl/convoy/internal/redact"
	"github.com/convoy-dl/convoy/internal/units"
	"github.com/convoy-dl/convoy/manifest"
	"github.com/convoy-dl/convoy/merge"
	"github.com/convoy-dl/convoy/segment"
)

// maxRestarts bounds how often one Download starts over because the file
// changed on the server while it ran.
const maxRestarts = 2

// writebackEvery is the size of the contiguous region one connection writes
// before the part file starts its writeback, so that a checkpoint's
// fdatasync has little left to do.
const writebackEvery = 8 << 20

// hashChunk is the range size of a plan cut in file order for a download
// with a checksum.
const hashChunk = 8 << 20

// Suffixes of the files kept beside the output while a download runs.
const (
	PartSuffix     = ".part"
	ManifestSuffix = ".convoy"
)

// ErrInterrupted reports a download stopped by its context (Ctrl-C); its
// progress is saved and the same call resumes it.
var ErrInterrupted = errors.New("interrupted")

// ErrExists reports an output file that is already there.
var ErrExists = errors.New("output file already exists")

// ErrNotResumable marks a manifest that cannot be used; Restart discards it.
var ErrNotResumable = errors.New("cannot resume")

// Download fetches cfg.URL into a file and returns when the file is complete
// under its final name, or with the error that stopped it. Progress is kept
// in a manifest beside the output, so that calling Download again with the
// same Config continues where it stopped. No goroutine outlives the call.
func Download(ctx context.Context, cfg Config) (Result, error) {
	start := time.Now()
	if cfg.Metalink != "" {
		cfgs, err := Metalinks(ctx, cfg)
		if err != nil {
			return Result{}, err
		}
		if len(cfgs) != 1 {
			return Result{}, fmt.Errorf("%w: %s: %w", ErrUsage, cfg.Metalink, errSeveral(len(cfgs)))
		}
		cfg = cfgs[0]
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Result{}, err
	}
	d := &download{cfg: cfg, start: start, first: cfg.URL, output: plannedOutput(cfg)}
	if cfg.RetryFor > 0 {
		d.budget = segment.NewBudget(cfg.RetryFor)
	}
	noticef := cfg.Logf
	if cfg.RetryNotice != nil {
		noticef = func(format string, args ...any) { cfg.RetryNotice(fmt.Sprintf(format, args...)) }
	}
	d.retryNotices = newRetryNotices(noticef, cfg.Verbose, d.idle)
	defer d.retryNotices.flush()
	if cfg.LimitRate > 0 {
		// A burst of a tenth of a second's bytes, at least one read's worth,
		// keeps the rate smooth without starving large reads.
		burst := int(min(max(cfg.LimitRate/10, 64<<10), 1<<30))
		d.limiter = rate.NewLimiter(rate.Limit(cfg.LimitRate), burst)
	}
	d.client = cfg.Client
	if d.client == nil {
		d.client = newClient(cfg)
		defer d.client.CloseIdleConnections()
	}
	var res Result
	if cfg.Writer != nil {
		res, err = d.toWriter(ctx)
	} else {
		res, err = d.run(ctx)
	}
	if f := (*followMetalink)(nil); errors.As(err, &f) {
		// The URL answered with a Metalink of one file: that file is the
		// download, on the same client.
		f.cfg.Client = d.client
		return Download(ctx, f.cfg)
	}
	if res.Path == "" {
		res.Path = d.outputPath() // a failed download names the file it was for
	}
	res.Elapsed = time.Since(start)
	res.Retries = d.retries.Load()
	res.Connections = d.usedConnections()
	res.Twice = d.discarded.Load()
	res.Cuts = int(d.cuts.Load())
	res.Restarts += int(d.startedOver.Load())
	if need := res.Size - res.Resumed; res.Fetched > need && need >= 0 {
		res.Twice += res.Fetched - need
	}
	return res, err
}

// newClient is the HTTP client cfg asks for.
func newClient(cfg Config) *http.Client {
	return segment.NewClient(segment.ClientOptions{
		Connections:    max(cfg.Connections, cfg.MaxConnections),
		HeaderTimeout:  cfg.StallTimeout,
		Insecure:       cfg.Insecure,
		RootCAs:        cfg.RootCAs,
		AllowDowngrade: cfg.AllowDowngrade,
		Proxy:          cfg.Proxy,
		NoProxy:        cfg.NoProxy,
	})
}

// download is the state of one Download call.
type download struct {
	eventMu sync.Mutex // serialises OnEvent; guards output
	connMu  sync.Mutex
	conns   []ConnProgress // what each connection last reported
	cfg     Config
	first   string // the first URL the user gave, which names the output
	output  string // the output path once known ("" before), for events
	// retryNotices prints retries to Logf without repeating itself.
	retryNotices *retryNotices
	// firstContact holds until a server has answered: an unreachable one
	// then fails at once (a typo) instead of being retried.
	firstContact bool
	// budget bounds in time the retries of a download under way (resumed,
	// or fetching ranges it can resume); underWay says when it applies.
	budget    *segment.Budget
	underWay  atomic.Bool
	limiter   *rate.Limiter    // nil without a rate limit
	mirrors   []segment.Remote // mirrors that agreed with the primary
	client    *http.Client
	start     time.Time
	retries   atomic.Int64
	discarded atomic.Int64 // received bytes not written
	cuts      atomic.Int64 // answers in flight cut short
	// startedOver counts partial downloads found unusable before a pass
	// (another version on the server, no ranges any more): restarts too.
	startedOver atomic.Int64
	// pieces verifies the pass under way by its piece hashes; nil without.
	pieces *pieceCheck
	// usedEarlier counts the connections that fetched bytes in an earlier
	// round of a pass, whose reports the next round's replace.
	usedEarlier atomic.Int64
}

// files names the three paths of one download.
type files struct {
	out, part, manifest string
}

func (d *download) run(ctx context.Context) (Result, error) {
	resuming := d.resuming()
	d.firstContact = !d.cfg.RetryConnRefused && !resuming
	d.underWay.Store(resuming)
	remote, err := d.probeFirst(ctx)
	if err != nil {
		return Result{}, err
	}
	if err := d.discover(ctx, remote); err != nil {
		return Result{}, err
	}
	f, err := d.outputPaths(remote)
	if err != nil {
		return Result{}, err
	}
	d.setOutput(f.out)
	if done, res, err := d.checkExisting(ctx, remote, f); done || err != nil {
		return res, err
	}
	lock, err := manifest.Acquire(f.part)
	if err != nil {
		return Result{}, describeFileError(err, f.part)
	}
	// Another run may have finished the file while this one waited to lock.
	if done, res, err := d.checkExisting(ctx, remote, f); done || err != nil {
		d.cleanupUnresumable(f, err)
		return res, errors.Join(err, lock.Release())
	}
	if err := manifest.RemoveTemps(f.manifest); err != nil {
		d.cfg.Logf("could not remove stale temporary files: %v", err)
	}
	res, err := d.fetchWithRestarts(ctx, remote, f)
	if rerr := lock.Release(); rerr != nil && err == nil {
		err = rerr
	}
	return res, err
}

// probeFirst probes the first URL; when it fails and mirrors were given,
// it tries them in order, and the first that answers becomes the primary
// (the ones before it are dropped, and said so). It fails only when every
// URL does, with the first URL's error. Every path that probes the file
// (a download, a stream to a writer, a restart) goes through it.
func (d *download) probeFirst(ctx context.Context) (segment.Remote, error) {
	urls := append([]string{d.cfg.URL}, d.cfg.Mirrors...)
	var first error
	for i, u := range urls {
		// Only the last URL waits out an outage: before it, another may
		// answer.
		r, err := d.probeURL(ctx, u, d.firstContact, i == len(urls)-1)
		if err == nil {
			err = d.cfg.meta.checkSize(r)
		}
		if err == nil {
			d.cfg.URL, d.cfg.Mirrors = u, urls[i+1:]
			d.firstContact = false
			return r, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil || i == len(urls)-1 {
			break
		}
		d.cfg.Logf("%s failed: %s; trying %s instead", redact.URL(u), redact.Text(err.Error()), redact.URL(urls[i+1]))
		d.emit(Event{Type: "mirror-dropped", Mirror: redact.URL(u), Error: redact.Text(err.Error())})
	}
	if len(urls) > 1 && ctx.Err() == nil {
		return segment.Remote{}, fmt.Errorf("%w (and every mirror failed too)", first)
	}
	return segment.Remote{}, first
}

// probeURL probes u with the download's client, headers and retry policy;
// with failFast an unreachable server is not retried, and with wait a
// download under way retries for its whole time budget.
func (d *download) probeURL(ctx context.Context, u string, failFast, wait bool) (segment.Remote, error) {
	p := &segment.Prober{
		FailFast:     failFast,
		Client:       d.client,
		Header:       d.cfg.Header,
		StallTimeout: d.cfg.StallTimeout,
		MaxTries:     d.cfg.MaxTries,
		RetryInitial: d.cfg.RetryInitial,
		RetryMax:     d.cfg.RetryMax,
		OnRetry:      d.onRetry,
	}
	if wait && d.underWay.Load() {
		p.Budget = d.budget
	}
	r, err := p.Probe(ctx, u)
	if err != nil {
		if ctx.Err() != nil {
			return r, fmt.Errorf("%w before the download began", ErrInterrupted)
		}
		return r, err
	}
	return r, nil
}

// fetchWithRestarts runs passes until the file is complete, starting over
// (bounded) when the file changes on the server.
func (d *download) fetchWithRestarts(ctx context.Context, remote segment.Remote, f files) (Result, error) {
	fresh := d.cfg.Restart
	for restarts := 0; ; restarts++ {
		res, err := d.pass(ctx, remote, f, fresh)
		res.Restarts = restarts
		if err == nil || restarts == maxRestarts || !changedRemote(err) || ctx.Err() != nil {
			if err != nil && !errors.Is(err, ErrExists) {
				// A complete part file kept for ErrExists stays: the
				// error tells the user it is there.
				d.cleanupUnresumable(f, err)
			}
			return res, err
		}
		d.cfg.Logf("%v; starting over from zero", err)
		d.emit(Event{Type: "restart", Error: redact.Text(err.Error())})
		if remote, err = d.probeFirst(ctx); err != nil {
			return res, err
		}
		// The mirrors agreed with the version that is gone: the next pass
		// compares each with the new one again.
		fresh = true
	}
}

func changedRemote(err error) bool {
	return errors.Is(err, segment.ErrRemoteChanged) || errors.Is(err, segment.ErrRangeIgnored)
}

// cleanupUnresumable removes a part file that no manifest describes: its
// bytes cannot be trusted by a later run anyway, unless the Metalink's
// piece hashes can vouch for them (see adoptPart): then it stays if it
// holds any, unless why, the error that ended the download, is a checksum
// mismatch, which says they were discarded.
func (d *download) cleanupUnresumable(f files, why error) {
	if _, err := os.Stat(f.manifest); errors.Is(err, fs.ErrNotExist) {
		if st, err := os.Stat(f.part); err == nil && st.Size() > 0 && d.cfg.meta != nil && d.cfg.meta.pieces != nil && !errors.Is(why, merge.ErrChecksum) {
			return
		}
		_ = os.Remove(f.part)
	}
}

// noteUnclaimedPart says so when a part file with bytes in it has no
// manifest (another tool's, or a stream's that could not resume): nothing
// vouches for its bytes, and the download about to start overwrites them.
func (d *download) noteUnclaimedPart(f files) {
	st, err := os.Stat(f.part)
	if err != nil || st.Size() == 0 {
		return
	}
	if _, err := os.Stat(f.manifest); errors.Is(err, fs.ErrNotExist) {
		d.cfg.Logf("%s exists without a manifest, so nothing vouches for its %s: overwriting it", f.part, units.FormatExact(st.Size()))
	}
}

// pass is one attempt at the whole file.
func (d *download) pass(ctx context.Context, remote segment.Remote, f files, fresh bool) (Result, error) {
	want, err := d.expectedChecksum(ctx, remote, f.out)
	if err != nil {
		return Result{}, err
	}
	d.mirrors = nil // this pass compares them again
	if !remote.Ranges || remote.Size < 0 {
		if len(d.cfg.Mirrors) > 0 {
			d.cfg.Logf("%s cannot serve ranges: ignoring the mirrors", redact.URL(remote.URL))
		}
		return d.stream(ctx, remote, f, want)
	}
	if !remote.Identifiable() && want == nil && remote.Size == 0 {
		return d.stream(ctx, remote, f, want) // nothing to mix up
	}
	if !remote.Identifiable() && want == nil {
		// Nothing would tell ranges of two versions of the file apart.
		d.cfg.Logf("the server sends neither a strong ETag nor Last-Modified: downloading in one stream, so a change of the file cannot mix versions")
		return d.stream(ctx, remote, f, want)
	}
	prev, err := d.resumeState(ctx, remote, f, fresh)
	if err != nil {
		return Result{}, err
	}
	if prev.m == nil && !fresh {
		if prev, err = d.adoptPart(ctx, remote, f, want != nil); err != nil {
			return Result{}, err
		}
	}
	base := manifest.Manifest{
		URL:          redact.URL(remote.URL),
		FinalURL:     redact.URL(remote.FinalURL),
		Size:         remote.Size,
		ETag:         remote.ETag,
		LastModified: remote.LastModified,
		Connections:  d.cfg.Connections,
	}
	// A download from several servers, now or in an earlier run, records
	// them and which bytes each sent.
	var prov *provenance
	var earlier []manifest.Served
	vetted := len(d.cfg.Mirrors) > 0
	if vetted || (prev.m != nil && (len(prev.m.Sources) > 0 || len(prev.m.ServedBy) > 0)) {
		base.Sources = sourcesFor(prev.m, d.servers(remote))
		if prev.m != nil {
			earlier = prev.m.ServedBy
		}
		prov = newProvenance(earlier)
	}
	pieces := d.usablePieces(remote.Size)
	if pieces != nil {
		base.PieceLength = pieces.Length
	}
	segs := prev.segs
	if segs == nil && want != nil {
		// Fill the file from the front, so the hash can follow the download
		// instead of reading most of the file back after the last byte.
		segs = orderedChunks(remote.Size, hashChunk)
	}
	room := manifestRoom(withMirrors(base, d.cfg.Mirrors), max(len(segs), 1), d.mostConnections(), prov != nil, len(earlier))
	part, err := merge.Open(f.part, remote.Size, room)
	if err != nil {
		return Result{}, describeFileError(err, f.part)
	}
	plan, err := segment.NewPlan(remote.Size, segs, d.startConnections(), d.cfg.MinSplitSize)
	if err != nil {
		return Result{}, errors.Join(err, part.Close())
	}
	cp := &checkpointer{plan: plan, part: part, path: f.manifest, base: base, served: prov, due: make(chan struct{}, 1)}
	var vet *vetting
	if vetted {
		vet = &vetting{trial: map[string]bool{}, prov: prov}
		cp.vet = vet
	}
	if pieces != nil {
		if cp.pieces, err = d.newPieceCheck(*pieces, part, plan, prev, remote, prov); err != nil {
			return Result{}, errors.Join(err, part.Close())
		}
		d.pieces = cp.pieces
		defer func() { cp.pieces.close(); d.pieces = nil }()
	}
	if want != nil {
		prefix := func() int64 { return contiguousPrefix(cp.claimable()) }
		if cp.hash, err = newFollower(part, *want, prev.m, prefix(), cp.pieces.hashPrefix(prefix)); err != nil {
			return Result{}, errors.Join(err, part.Close())
		}
		// Stops the background hashing on every way out; its error, if any,
		// is reported by finish on the way that needs it.
		defer func() { _ = cp.hash.close() }()
	}
	if err := cp.save(); err != nil {
		return Result{}, errors.Join(describeFileError(err, f.manifest), part.Close())
	}
	d.emit(Event{Type: "start", Size: remote.Size, Done: prev.done,
		Connections: d.startConnections(), Segments: len(plan.Snapshot())})

	var fetched atomic.Int64
	countFetched := func(_, n int64) {
		fetched.Add(n)
		cp.wrote(n)
	}
	fetcher := d.newFetcher(remote)
	// From here the download can resume: an outage is waited out for the
	// budget's time, counted from now.
	if d.budget != nil {
		d.budget.Progressed()
	}
	d.underWay.Store(true)
	fetcher.Budget = d.budget
	onWrite := func(r segment.Remote) func(off, n int64) {
		return cp.pieces.onWrite(countFetched)
	}
	fetcher.OnWrite = onWrite(remote)
	fetcher.Record = prov.recorder(remote)
	fetcher.RegionSize = writebackEvery
	fetcher.OnRegion = part.StartWriteback
	res := Result{Path: f.out, Size: remote.Size, Resumed: prev.done}
	fetch := func(ctx context.Context) error {
		if !vetted {
			return d.runOne(ctx, fetcher, plan, part)
		}
		return d.runVetted(ctx, remote, fetcher, plan, part, cp, vet, onWrite)
	}
	if cp.pieces != nil {
		once := fetch
		fetch = func(ctx context.Context) error { return cp.pieces.rounds(ctx, once) }
	}
	runErr := d.withCheckpoints(ctx, remote.Size, cp, plan.Written, fetch)
	res.Fetched = fetched.Load()
	res.Refetched = cp.pieces.refetched()
	d.cuts.Add(int64(plan.Cuts()))
	if runErr != nil {
		if errors.Is(runErr, ErrPartChanged) {
			return res, errors.Join(partChanged(runErr, f), part.Close())
		}
		if errors.Is(runErr, merge.ErrChecksum) && cp.pieces != nil {
			// Pieces that kept failing: those verified are worth keeping.
			runErr = fmt.Errorf("%w; nothing was saved as %s, the verified pieces are kept in %s", runErr, f.out, f.part)
		}
		if changedRemote(runErr) {
			// The bytes on disk may belong to another version of the file.
			return res, errors.Join(runErr, part.Close(), manifest.Remove(f.manifest))
		}
		return res, errors.Join(interrupted(ctx, describeFileError(runErr, f.part), !errors.Is(runErr, errSaveFailed)), part.Close())
	}
	if cp.hash != nil {
		sum, err := cp.hash.finish(remote.Size)
		if errors.Is(err, ErrPartChanged) {
			return res, errors.Join(partChanged(err, f), part.Close())
		}
		if err != nil {
			if errors.Is(err, merge.ErrChecksum) && prov != nil {
				err = fmt.Errorf("%w; %s", err, d.blame(ctx, remote, prov, part))
			}
			if errors.Is(err, merge.ErrChecksum) && d.cfg.RemoveOnError {
				return res, errors.Join(badBytes(err, f, false), part.Close(), os.Remove(f.part), manifest.Remove(f.manifest))
			}
			return res, errors.Join(badBytes(err, f, true), part.Close())
		}
		res.Checksum, res.Verified = sum, want.Sum != nil
	}
	labelETag(f.part, remote.ETag)
	if err := d.commit(part, f, remote.Size, lastModified(remote), true); err != nil {
		return res, err
	}
	return res, describeFileError(manifest.Remove(f.manifest), f.manifest)
}

// commit gives the finished part file its final name. A file that appeared
// there during the download is replaced only with --overwrite; otherwise
// the bytes stay in the part file and the error says so. A resumable
// download's manifest vouches for them, so a run with --overwrite commits
// them without fetching; a stream's cannot be vouched for by a later run.
func (d *download) commit(part *merge.PartFile, f files, size int64, mtime time.Time, resumable bool) error {
	err := part.Commit(f.out, size, mtime, d.cfg.Overwrite)
	switch {
	case errors.Is(err, fs.ErrExist) && resumable:
		return fmt.Errorf("%w: %s appeared during the download; the bytes are kept in %s (run again with --overwrite to replace it)", ErrExists, f.out, f.part)
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("%w: %s appeared during the download; the complete download is kept in %s (rename it yourself, or run again with --overwrite to fetch it again and replace it)", ErrExists, f.out, f.part)
	}
	return describeFileError(err, f.out)
}

// partChanged explains bytes of the part file that changed on disk between
// runs: which ones is unknown, so nothing of it can be verified.
func partChanged(err error, f files) error {
	return fmt.Errorf("%s: %w; which bytes is unknown, so the file cannot be verified: run again with --restart to fetch it anew", f.part, err)
}

// badBytes explains a checksum mismatch: the bytes never reach the final
// name. A resumable download keeps them in the part file; a stream's part
// file cannot be resumed and is removed.
func badBytes(err error, f files, kept bool) error {
	switch {
	case !errors.Is(err, merge.ErrChecksum):
		return err
	case kept:
		return fmt.Errorf("%w; the bytes are kept in %s, not saved as %s (run with --restart to fetch them again)", err, f.part, f.out)
	}
	return fmt.Errorf("%w; the bytes were discarded, nothing was saved as %s", err, f.out)
}

// startOver says that a partial download is dropped and why, in the log and
// as a restart event, and counts it among the restarts.
func (d *download) startOver(why string) {
	d.cfg.Logf("%s; starting over from zero", why)
	d.emit(Event{Type: "restart", Error: redact.Text(why)})
	d.startedOver.Add(1)
}

// stream downloads with one plain GET, for servers without ranges or size.
// Such a download cannot resume, so it keeps no manifest.
func (d *download) stream(ctx context.Context, remote segment.Remote, f files, want *merge.Checksum) (Result, error) {
	if _, err := os.Stat(f.manifest); err == nil {
		d.startOver("the server no longer supports ranges")
		if err := manifest.Remove(f.manifest); err != nil {
			return Result{}, err
		}
	} else if !d.cfg.Restart {
		d.noteUnclaimedPart(f)
	}
	part, err := merge.Open(f.part, remote.Size, 0) // no manifest
	if err != nil {
		return Result{}, describeFileError(err, f.part)
	}
	if oneStream(remote) {
		d.cfg.Logf("%s, and an interrupted download starts over", noRangesNotice)
	}
	d.emit(Event{Type: "start", Size: remote.Size, Connections: 1, Segments: 1})
	var at, got atomic.Int64 // where the stream is; all it received, restarts included
	fetcher := d.newFetcher(remote)
	fetcher.IfRange = ""
	fetcher.OnWrite = func(off, n int64) { at.Store(off + n); got.Add(n) }
	var size int64
	err = d.withCheckpoints(ctx, remote.Size, nil, at.Load, func(ctx context.Context) error {
		var err error
		size, err = fetcher.Stream(ctx, part)
		return err
	})
	res := Result{Path: f.out, Size: size, Fetched: got.Load()}
	if err != nil {
		return res, errors.Join(interrupted(ctx, describeFileError(err, f.part), false), part.Close())
	}
	wantSize := remote.Size
	if wantSize < 0 {
		// An earlier attempt of a restarted stream may have run longer.
		if err := part.Truncate(size); err != nil {
			return res, errors.Join(describeFileError(err, f.part), part.Close())
		}
		wantSize = size
	}
	if want != nil {
		h, err := merge.NewPrefixHasher(want.Algo, part, 0, nil)
		if err == nil {
			if err = h.Advance(wantSize); err == nil {
				err = h.Verify(*want)
			}
		}
		if err != nil {
			return res, errors.Join(badBytes(err, f, false), part.Close())
		}
		res.Checksum, res.Verified = merge.Checksum{Algo: want.Algo, Sum: h.Sum()}.String(), want.Sum != nil
	}
	labelETag(f.part, remote.ETag)
	if err := d.commit(part, f, wantSize, lastModified(remote), false); err != nil {
		return res, err
	}
	return res, nil
}

// noRangesNotice is said before a download that can only come in one
// stream starts, so nobody learns it only when an interruption keeps
// nothing.
const noRangesNotice = "the server does not support ranges: one connection"

// oneStream reports whether r can only be fetched in one plain stream: it
// has no range support (a server that sends no size has none either). An
// empty file needs no ranges, so it is not counted.
func oneStream(r segment.Remote) bool {
	return r.Size != 0 && (!r.Ranges || r.Size < 0)
}

func (d *download) newFetcher(r segment.Remote) *segment.Fetcher {
	f := &segment.Fetcher{
		Client:       d.client,
		URL:          r.FinalURL,
		Header:       headersFor(d.cfg.Header, r.URL, r.FinalURL),
		Size:         r.Size,
		IfRange:      r.Validator(),
		ETag:         r.ETag,
		LastModified: r.LastModified,
		Encoding:     r.Encoding,
		StallTimeout: d.cfg.StallTimeout,
		Limiter:      d.limiter,
		OnConn:       d.onConn,
		OnDiscard:    func(n int64) { d.discarded.Add(n) },
		MaxTries:     d.cfg.MaxTries,
		RetryInitial: d.cfg.RetryInitial,
		RetryMax:     d.cfg.RetryMax,
		OnRetry:      d.onRetry,
	}
	f.OnLimit = func(using, was int) { d.noteLimit(r, using, was) }
	f.OnConnections = func(count, _ int, reason string) {
		d.emit(Event{Type: "connections", Host: hostOf(r), Connections: count, Reason: reason})
	}
	if r.FinalURL != r.URL {
		// A redirect target may be a signed URL that expires mid-download.
		f.Refresh = func(ctx context.Context) (string, error) { return d.resolveAgain(ctx, r) }
	}
	return f
}

// noteLimit says how many connections server r takes, once it refused
// some with 503 or 429 while others worked (see segment.Fetcher.OnLimit).
func (d *download) noteLimit(r segment.Remote, using, was int) {
	host := hostOf(r)
	conns := "connections"
	if using == 1 {
		conns = "connection"
	}
	if was == 0 || using < was {
		d.cfg.Logf("server %s accepts only %d %s: using %d", host, using, conns, using)
		return
	}
	d.cfg.Logf("server %s now accepts %d %s: using %d", host, using, conns, using)
}

// hostOf names r's server: the host (and port) of its final URL.
func hostOf(r segment.Remote) string {
	if u, err := url.Parse(r.FinalURL); err == nil && u.Host != "" {
		return u.Host
	}
	return redact.URL(r.FinalURL)
}

// adaptive reports whether convoy chooses the connection count (no fixed
// Connections).
func (d *download) adaptive() bool { return d.cfg.Connections == 0 }

// startConnections is how many connections a lone server starts with: the
// fixed count, or where the adaptive count starts.
func (d *download) startConnections() int {
	if d.adaptive() {
		return min(segment.StartConnections, d.cfg.MaxConnections)
	}
	return d.cfg.Connections
}

// mostConnections is the most connections the download may open.
func (d *download) mostConnections() int {
	if d.adaptive() {
		return d.cfg.MaxConnections
	}
	return d.cfg.Connections
}

// runOne fetches plan from f alone, over the fixed count of connections
// or an adaptive one.
func (d *download) runOne(ctx context.Context, f *segment.Fetcher, plan *segment.Plan, w io.WriterAt) error {
	if !d.adaptive() {
		return f.Run(ctx, plan, w, d.cfg.Connections)
	}
	return segment.RunSources(ctx, plan, w, []segment.Source{{Fetcher: f, Connections: d.startConnections(), Max: d.cfg.MaxConnections}}, nil)
}

// servers is the primary followed by the mirrors that agreed with it.
func (d *download) servers(primary segment.Remote) []segment.Remote {
	return append([]segment.Remote{primary}, d.mirrors...)
}

func sumOf(ns []int) int {
	var sum int
	for _, n := range ns {
		sum += n
	}
	return sum
}

// runMirrors fetches plan from the primary and the mirrors that agreed
// with it, together; a source that fails is dropped and the others take
// over. It is for a stream, whose mirrors were compared before it began.
func (d *download) runMirrors(ctx context.Context, primary segment.Remote, pf *segment.Fetcher, plan *segment.Plan, w io.WriterAt, onWrite func(segment.Remote) func(off, n int64)) error {
	remotes := d.servers(primary)
	counts := d.shareConnections(remotes)
	sources := make([]segment.Source, len(remotes))
	for i, r := range remotes {
		f := pf
		if i > 0 {
			f = d.newFetcher(r)
			f.OnWrite, f.RegionSize, f.OnRegion, f.Budget = onWrite(r), pf.RegionSize, pf.OnRegion, pf.Budget
			if d.cfg.MaxTries == 0 {
				f.MaxTries = defaultMaxTries // see runVetted
			}
		}
		sources[i] = d.source(f, counts[i])
	}
	return segment.RunSources(ctx, plan, w, sources, func(i int, err error) {
		d.cfg.Logf("dropping %s: %v", redact.URL(remotes[i].URL), err)
		d.emit(Event{Type: "mirror-dropped", Mirror: redact.URL(remotes[i].URL), Error: redact.Text(err.Error())})
	})
}

// resolveAgain probes the original URL again for a fresh redirect target;
// the file must still be the one being fetched.
func (d *download) resolveAgain(ctx context.Context, was segment.Remote) (string, error) {
	now, err := d.probeURL(ctx, was.URL, false, true)
	if err != nil {
		return "", err
	}
	if now.Size != was.Size || now.ETag != was.ETag || now.LastModified != was.LastModified {
		return "", fmt.Errorf("%w: %s resolves to another version of the file", segment.ErrRemoteChanged, redact.URL(was.URL))
	}
	d.cfg.Logf("the download address expired; resolved %s again", redact.URL(was.URL))
	return now.FinalURL, nil
}

func (d *download) onConn(id int, st segment.ConnState) {
	d.connMu.Lock()
	defer d.connMu.Unlock()
	if id >= len(d.conns) {
		d.conns = append(d.conns, make([]ConnProgress, id+1-len(d.conns))...)
	}
	d.conns[id] = st
}

// connections copies what the connections last reported.
func (d *download) connections() []ConnProgress {
	d.connMu.Lock()
	defer d.connMu.Unlock()
	return append([]ConnProgress(nil), d.conns...)
}

// idle is how long the download has gone without progress, once it is
// under way (0 before).
func (d *download) idle() time.Duration {
	if d.budget == nil || !d.underWay.Load() {
		return 0
	}
	return d.budget.Idle()
}

// usedConnections counts the connections that fetched bytes: not those
// that a server refused all along, nor those that found no work (in the
// round of a pass that used most).
func (d *download) usedConnections() int {
	n := 0
	for _, c := range d.connections() {
		if c.Written > 0 {
			n++
		}
	}
	return max(n, int(d.usedEarlier.Load()))
}

func (d *download) onRetry(err error, wait time.Duration) {
	d.retries.Add(1)
	d.retryNotices.retry(err.Error(), wait)
	d.emit(Event{Type: "retry", Wait: wait.Seconds(), Error: redact.Text(err.Error())})
}

// headersFor returns the headers for requests to final, for a download the
// user addressed to original: credentials stay with the original host.
func headersFor(h http.Header, original, final string) http.Header {
	ou, err1 := url.Parse(original)
	fu, err2 := url.Parse(final)
	if err1 != nil || err2 != nil {
		return segment.HeadersFor(h, nil, nil)
	}
	return segment.HeadersFor(h, ou, fu)
}

func lastModified(r segment.Remote) time.Time {
	t, err := http.ParseTime(r.LastModified)
	if err != nil {
		return time.Time{}
	}
	return t
}

// interrupted marks an error caused by the caller's cancellation, saying
// whether the progress was kept. An error other than the cancellation itself
// is kept beside it.
func interrupted(ctx context.Context, err error, saved bool) error {
	if err == nil || ctx.Err() == nil {
		return err
	}
	msg := fmt.Errorf("%w: nothing could be kept (this download cannot resume)", ErrInterrupted)
	if saved {
		msg = fmt.Errorf("%w: progress is saved, run the same command to resume", ErrInterrupted)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return msg
	}
	return errors.Join(msg, err)
}

// describeFileError adds the path and a plain cause to errors of the disk
// side.
func describeFileError(err error, path string) error {
	var pe *fs.PathError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, merge.ErrNoSpace), errors.Is(err, manifest.ErrLocked):
		return err
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("%w: disk full writing %s; free some space and run the same command to resume", merge.ErrNoSpace, path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("cannot write %s: %w", path, fs.ErrPermission)
	case errors.Is(err, syscall.EROFS):
		return fmt.Errorf("cannot write %s: %w", path, syscall.EROFS)
	case errors.As(err, &pe) && errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("cannot write %s: folder does not exist", path)
	}
	return err
}
