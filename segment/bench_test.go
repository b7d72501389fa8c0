package segment

import (
	"context"
	"fmt"
	"testing"

	"github.com/convoy-dl/convoy/internal/testserver"
)

// discardAt is an io.WriterAt that keeps nothing: the benchmark measures the
// network side alone.
type discardAt struct{}

func (discardAt) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

// BenchmarkRun measures the copy from response bodies to WriteAt over
// loopback, per connection count.
func BenchmarkRun(b *testing.B) {
	const size = 64 << 20
	srv := testserver.New(b, testserver.Size(size))
	for _, conns := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			client := NewClient(ClientOptions{Connections: conns})
			defer client.CloseIdleConnections()
			f := &Fetcher{Client: client, URL: srv.URL, Size: size, IfRange: srv.ETag()}
			b.SetBytes(size)
			for b.Loop() {
				plan, err := NewPlan(size, nil, conns, 1<<20)
				if err != nil {
					b.Fatal(err)
				}
				if err := f.Run(context.Background(), plan, discardAt{}, conns); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPlanCycle measures the planner's bookkeeping for one 256 KiB
// write: reserve, commit and the occasional Next. A plan that runs out (1 TiB
// goes by in about four million writes) is replaced by a fresh one.
func BenchmarkPlanCycle(b *testing.B) {
	const size = 1 << 40
	var span *Span
	fresh := func() {
		plan, err := NewPlan(size, nil, 16, 1<<20)
		if err != nil {
			b.Fatal(err)
		}
		span, _ = plan.Next()
		span.request(1<<30, Thief{})
	}
	fresh()
	b.SetBytes(256 << 10)
	for b.Loop() {
		_, n := span.reserve(256 << 10)
		if n == 0 {
			span.finish()
			if span, _ = span.plan.Next(); span == nil {
				fresh()
			} else {
				span.request(1<<30, Thief{})
			}
			continue
		}
		span.commit(n)
	}
}

// BenchmarkSnapshot measures a checkpoint's snapshot of a plan split into
// many spans.
func BenchmarkSnapshot(b *testing.B) {
	plan, err := NewPlan(1<<30, nil, 256, 1<<20)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if segs := plan.Snapshot(); len(segs) == 0 {
			b.Fatal("empty snapshot")
		}
	}
}
