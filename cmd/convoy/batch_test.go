package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/testserver"
)

func TestParseInputFile(t *testing.T) {
	good := "# a list\n" +
		"http://a/x.iso\thttp://b/x.iso  http://c/x.iso\n" +
		"  out=one.iso\n" +
		"\tdir=/tmp/d\n" +
		"\n" +
		"http://a/y.bin\n" +
		"  checksum=md5:" + strings.Repeat("00", 16) + "\n"
	jobs, err := parseInputFile(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 {
		t.Fatalf("%d jobs, want 2: %+v", len(jobs), jobs)
	}
	if j := jobs[0]; j.url != "http://a/x.iso" || len(j.mirrors) != 2 || j.out != "one.iso" || j.dir != "/tmp/d" || j.line != 2 {
		t.Errorf("first job %+v", j)
	}
	if j := jobs[1]; j.url != "http://a/y.bin" || j.checksum != "md5:"+strings.Repeat("00", 16) || j.line != 6 {
		t.Errorf("second job %+v", j)
	}
	for _, bad := range []string{
		"  out=x\nhttp://a/x\n",                // option before a URL
		"http://a/x\n  out\n",                  // no '='
		"http://a/x\n  speed=9\n",              // unknown option
		strings.Repeat("x", 70<<10) + "\n",     // line too long
		"http://a/x\n  out=../../escape.bin\n", // out of its folder
		"http://a/x\n  out=sub/../../e.bin\n",
		"http://a/x\n  out=/etc/passwd\n",
		"http://a/x\n  checksum=sha256:zz\n",
		"http://a/x\n  checksum=crc32:00\n",
	} {
		if _, err := parseInputFile(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %.40q", bad)
		}
	}
}

func FuzzParseInputFile(f *testing.F) {
	f.Add("http://a/x\n  out=y\n")
	f.Add("# c\n\n\thttp://x\n")
	f.Add("http://a/x\thttp://b/x\n  dir=d\n  checksum=md5:00\n")
	f.Add("http://a/x\n  out=../x\n")
	f.Fuzz(func(t *testing.T, s string) {
		jobs, err := parseInputFile(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, j := range jobs {
			if j.url == "" || strings.ContainsAny(j.url, " \t\n") || j.line < 1 {
				t.Fatalf("job %+v from %q", j, s)
			}
			if j.out != "" && (convoy.CheckRelativeName(j.out) != nil || strings.Contains("/"+j.out+"/", "/../")) {
				t.Fatalf("job %+v from %q: out= leads out of its folder", j, s)
			}
		}
	})
}

func TestBatchDownload(t *testing.T) {
	a := testserver.New(t, testserver.Size(300<<10), testserver.Seed(1))
	b := testserver.New(t, testserver.Size(200<<10), testserver.Seed(2))
	missing := testserver.New(t, testserver.Statuses(404))
	dir := t.TempDir()
	list := filepath.Join(dir, "list.txt")
	content := a.URL + "\n  out=a.bin\n" + missing.URL + "\n  out=m.bin\n" + b.URL + "\n  out=b.bin\n"
	if err := os.WriteFile(list, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out := runCLI(t, "get", "-q", "-j", "2", "-d", dir, "-i", list)
	if code != exitFailure {
		t.Fatalf("exit %d, want %d: %s", code, exitFailure, out)
	}
	if !strings.Contains(out, "line 3") || !strings.Contains(out, "404") || !strings.Contains(out, "1 of 3 downloads failed") {
		t.Errorf("output does not name the failure: %s", out)
	}
	a.Verify(t, filepath.Join(dir, "a.bin"))
	b.Verify(t, filepath.Join(dir, "b.bin"))

	if code, out := runCLI(t, "get", "-i", list, a.URL); code != exitUsage {
		t.Errorf("-i with a URL: exit %d, %q", code, out)
	}
	if code, out := runCLI(t, "get", "-o", "x", "-i", list); code != exitUsage {
		t.Errorf("-i with -o: exit %d, %q", code, out)
	}
}

// Running a batch again is safe: finished files count as successes, already
// complete, and the rest are fetched; a single download run again says it
// is already complete and exits 0.
func TestRerunsSucceed(t *testing.T) {
	a := testserver.New(t, testserver.Size(300<<10), testserver.Seed(1))
	b := testserver.New(t, testserver.Size(200<<10), testserver.Seed(2))
	c := testserver.New(t, testserver.Size(100<<10), testserver.Seed(3))
	dir := t.TempDir()
	list := filepath.Join(dir, "list.txt")
	if err := os.WriteFile(list, []byte(a.URL+"\n  out=a.bin\n"+b.URL+"\n  out=b.bin\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := runCLI(t, "get", "-q", "-d", dir, "-i", list); code != exitOK {
		t.Fatalf("first run: exit %d: %s", code, out)
	}
	if err := os.WriteFile(list, []byte(a.URL+"\n  out=a.bin\n"+b.URL+"\n  out=b.bin\n"+c.URL+"\n  out=c.bin\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out := runCLI(t, "get", "-d", dir, "-i", list)
	if code != exitOK || !strings.Contains(out, "3 of 3 downloads succeeded (2 already complete)") {
		t.Fatalf("second run: exit %d, want 0 counting 2 already complete: %s", code, out)
	}
	for name, s := range map[string]*testserver.Server{"a.bin": a, "b.bin": b, "c.bin": c} {
		s.Verify(t, filepath.Join(dir, name))
	}
	code, out = runCLI(t, "get", "-d", dir, "-o", "a.bin", a.URL)
	if code != exitOK || !strings.Contains(out, "already complete") {
		t.Fatalf("single run again: exit %d, want 0 saying already complete: %s", code, out)
	}
}

// An input file is checked whole before anything is fetched: a name that
// leads out of its folder or two out= lines naming one file are usage
// errors naming their lines; a name with subfolders lands in them.
func TestInputFileStaysInItsFolder(t *testing.T) {
	srv := testserver.New(t, testserver.Size(10<<10))
	root := t.TempDir()
	dir := filepath.Join(root, "a", "b")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	list := filepath.Join(root, "list.txt")
	for _, tt := range []struct{ content, says string }{
		{srv.URL + "\n  out=../../escape.bin\n", "line 2"},
		{srv.URL + "\n  out=x.bin\n" + srv.URL + "\n\n  out=x.bin\n", "lines 2 and 5 both save to"},
		{srv.URL + "\n  checksum=sha256:zz\n", "line 2"},
	} {
		if err := os.WriteFile(list, []byte(tt.content), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out := runCLI(t, "get", "-q", "-d", dir, "-i", list)
		if code != exitUsage || !strings.Contains(out, tt.says) {
			t.Errorf("list %q: exit %d, %q; want a usage error saying %q", tt.content, code, out, tt.says)
		}
		if srv.Stats().Gets != 0 {
			t.Fatalf("list %q: fetched before the list was refused", tt.content)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "escape.bin")); err == nil {
		t.Fatal("a file was written outside the folder")
	}
	if err := os.WriteFile(list, []byte(srv.URL+"\n  out=sub/deeper/x.bin\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := runCLI(t, "get", "-q", "-d", dir, "-i", list); code != exitOK {
		t.Fatalf("a name in subfolders: exit %d: %s", code, out)
	}
	srv.Verify(t, filepath.Join(dir, "sub", "deeper", "x.bin"))
}

// With --json, the events of a batch's downloads interleave; each names
// its download with url and output, the done and error events too.
func TestBatchEventsNameTheirDownload(t *testing.T) {
	a := testserver.New(t, testserver.Size(1<<20), testserver.Seed(1), testserver.Rate(1<<20))
	b := testserver.New(t, testserver.Size(1<<20), testserver.Seed(2), testserver.Rate(1<<20))
	missing := testserver.New(t, testserver.Statuses(404))
	dir := t.TempDir()
	list := filepath.Join(dir, "list.txt")
	content := a.URL + "\n  out=a.bin\n" + b.URL + "\n  out=b.bin\n" + missing.URL + "\n  out=m.bin\n"
	if err := os.WriteFile(list, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"convoy", "get", "--json", "-q", "-n", "2", "-j", "3", "-d", dir, "-i", list}, &stdout, &stderr)
	if code != exitFailure {
		t.Fatalf("exit %d, want %d (one 404): %s", code, exitFailure, stderr.String())
	}
	output := map[string]string{
		a.URL:       filepath.Join(dir, "a.bin"),
		b.URL:       filepath.Join(dir, "b.bin"),
		missing.URL: filepath.Join(dir, "m.bin"),
	}
	var order []string // "type url" in the order printed
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var e convoy.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("not a JSON event: %q: %v", line, err)
		}
		want, ok := output[e.URL]
		if !ok || e.Output != want {
			t.Errorf("event %q does not name its download (url %q, output %q)", line, e.URL, e.Output)
		}
		order = append(order, e.Type+" "+e.URL)
	}
	for _, want := range []string{"start " + a.URL, "done " + a.URL, "start " + b.URL, "done " + b.URL, "error " + missing.URL} {
		if !slices.Contains(order, want) {
			t.Errorf("events %q lack %q", order, want)
		}
	}
	// The downloads ran side by side: both started before either was done.
	firstDone := slices.IndexFunc(order, func(s string) bool { return strings.HasPrefix(s, "done ") })
	if firstDone < slices.Index(order, "start "+a.URL) || firstDone < slices.Index(order, "start "+b.URL) {
		t.Errorf("events %q: the downloads did not interleave, so this test proves nothing", order)
	}
}
