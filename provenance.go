package convoy

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/convoy-dl/convoy/internal/redact"
	"github.com/convoy-dl/convoy/internal/units"
	"github.com/convoy-dl/convoy/manifest"
	"github.com/convoy-dl/convoy/segment"
)

// provenance remembers which server sent each byte range of a download from
// several, for the manifest and to name the servers of a bad file. Adjacent
// ranges from one server are kept as one, so its size follows the number of
// requests that changed server, not the file size. It is safe for
// concurrent use.
type provenance struct {
	mu     sync.Mutex
	served []manifest.Served // in file order, not overlapping
}

// newProvenance starts from what an earlier run recorded, which must be in
// file order without overlap (as manifest.Decode guarantees).
func newProvenance(earlier []manifest.Served) *provenance {
	return &provenance{served: slices.Clone(earlier)}
}

// add records that url sent [off, off+n), replacing what was recorded for
// those bytes.
func (p *provenance) add(url string, off, n int64) {
	if n <= 0 {
		return
	}
	end := off + n
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.served
	// i: the first range that ends after off; j: the first that starts at
	// or after end. Ranges i..j-1 overlap the new one.
	i := sort.Search(len(s), func(k int) bool { return s[k].End > off })
	j := i
	for j < len(s) && s[j].Start < end {
		j++
	}
	repl := make([]manifest.Served, 0, 3)
	k := i // where the new range lands
	if i < j && s[i].Start < off {
		k++
		repl = append(repl, manifest.Served{URL: s[i].URL, Start: s[i].Start, End: off})
	}
	repl = append(repl, manifest.Served{URL: url, Start: off, End: end})
	if i < j && s[j-1].End > end {
		repl = append(repl, manifest.Served{URL: s[j-1].URL, Start: end, End: s[j-1].End})
	}
	s = slices.Replace(s, i, j, repl...)
	// Join the new range with its neighbours from the same server.
	if k+1 < len(s) && s[k+1].URL == url && s[k+1].Start == s[k].End {
		s[k].End = s[k+1].End
		s = slices.Delete(s, k+1, k+2)
	}
	if k > 0 && s[k-1].URL == url && s[k-1].End == s[k].Start {
		s[k-1].End = s[k].End
		s = slices.Delete(s, k, k+1)
	}
	p.served = s
}

// snapshot returns the ranges recorded so far, in file order.
func (p *provenance) snapshot() []manifest.Served {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.served)
}

// summary names each server and how many bytes it sent, largest share
// first: "http://a/f (60.0 MiB), http://b/f (4.0 MiB)".
func (p *provenance) summary() string {
	bytes := map[string]int64{}
	var urls []string
	for _, s := range p.snapshot() {
		if _, ok := bytes[s.URL]; !ok {
			urls = append(urls, s.URL)
		}
		bytes[s.URL] += s.End - s.Start
	}
	sort.SliceStable(urls, func(a, b int) bool { return bytes[urls[a]] > bytes[urls[b]] })
	parts := make([]string, len(urls))
	for i, u := range urls {
		parts[i] = fmt.Sprintf("%s (%s)", u, units.FormatBytes(bytes[u]))
	}
	return strings.Join(parts, ", ")
}

// recorder returns what records in p (when set) that r sent the bytes
// written: a Fetcher's Record, called before the plan counts them. Nil
// without a provenance.
func (p *provenance) recorder(r segment.Remote) func(off, n int64) {
	if p == nil {
		return nil
	}
	u := redact.URL(r.URL)
	return func(off, n int64) { p.add(u, off, n) }
}
