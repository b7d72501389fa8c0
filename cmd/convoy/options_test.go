package main

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/testserver"
	"github.com/convoy-dl/convoy/segment"
)

// TestOptionRanges checks that a numeric option out of its range is a usage
// error naming the option and what it takes, and that a value in range works.
func TestOptionRanges(t *testing.T) {
	srv := testserver.New(t, testserver.Size(64<<10))
	dir := t.TempDir()
	get := func(args ...string) []string {
		return append([]string{"get", "-q", "--overwrite", "-d", dir, "-o", "f.bin"}, append(args, srv.URL)...)
	}
	tests := []struct {
		name string
		args []string
		says string // "" for a download that succeeds
	}{
		{"max-tries-0-is-no-bound", get("--max-tries", "0"), ""},
		{"max-tries-negative", get("--max-tries", "-1"), "--max-tries must be 0 (no bound) or more"},
		{"retry-for-negative", get("--retry-for=-1m"), "--retry-for must be 0"},
		{"retry-for-0", get("--retry-for", "0"), ""},
		{"retry-for-10m", get("--retry-for", "10m"), ""},
		{"max-tries-1", get("--max-tries", "1"), ""},
		{"stall-timeout-0", get("--stall-timeout", "0"), "--stall-timeout must be a duration above zero"},
		{"stall-timeout-negative", get("--stall-timeout=-1s"), "--stall-timeout must be a duration above zero"},
		{"stall-timeout-5s", get("--stall-timeout", "5s"), ""},
		{"max-per-host-0", get("-x", "0"), "--max-per-host must be at least 1"},
		{"max-per-host-negative", get("--max-per-host", "-2"), "--max-per-host must be at least 1"},
		{"max-per-host-1", get("-x", "1", srv.URL), ""}, // a mirror, so that -x counts
		{"checkpoint-interval-0", get("--checkpoint-interval", "0"), "--checkpoint-interval must be a duration above zero"},
		{"checkpoint-interval-negative", get("--checkpoint-interval", "-250ms"), "--checkpoint-interval must be a duration above zero"},
		{"checkpoint-interval-10ms", get("--checkpoint-interval", "10ms"), ""},
		{"bench-duration-0", []string{"bench", "--duration", "0", srv.URL}, "--duration must be a duration above zero"},
		{"bench-duration-negative", []string{"bench", "--duration", "-1s", srv.URL}, "--duration must be a duration above zero"},
		{"bench-connections-0", []string{"bench", "-n", "0", srv.URL}, "--connections must be between 1 and 128"},
		{"bench-connections-129", []string{"bench", "-n", "129", srv.URL}, "--connections must be between 1 and 128"},
		{"bench-top-0", []string{"bench", "--top", "0", srv.URL}, "--top must be at least 1"},
		{"bench-top-negative", []string{"bench", "--top", "-1", srv.URL}, "--top must be at least 1"},
		{"bench-in-range", []string{"bench", "--duration", "100ms", "-n", "1", "--top", "1", srv.URL}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkExit(t, tt.args, tt.says)
		})
	}
}

// TestURLChecks checks that a URL that cannot be downloaded from, on the
// command line, in --mirror-file, in --input-file or given to bench, is a
// usage error at once rather than a network fault to retry.
func TestURLChecks(t *testing.T) {
	srv := testserver.New(t, testserver.Size(64<<10))
	dir := t.TempDir()
	file := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	get := []string{"get", "-q", "--overwrite", "-d", dir, "-o", "f.bin"}
	with := func(args ...string) []string { return append(append([]string{}, get...), args...) }
	tests := []struct {
		name string
		args []string
		says string // "" for a download that succeeds
	}{
		{"port-too-high", with("http://127.0.0.1:99999/x"), "http://127.0.0.1:99999/x has port 99999; a port is a number from 1 to 65535"},
		{"port-0", with("http://127.0.0.1:0/x"), "has port 0; a port is a number from 1 to 65535"},
		{"port-ipv6", with("http://[::1]:65536/x"), "has port 65536; a port is a number from 1 to 65535"},
		{"port-not-a-number", with("http://127.0.0.1:http/x"), `invalid port ":http"`},
		{"port-secrets-redacted", with("http://u:hunter2@127.0.0.1:70000/x?sig=hunter2"), "has port 70000"},
		{"no-host", with("http://:8080/x"), "has no host"},
		{"other-scheme", with("ftp://example.com/x"), "is not an http or https URL"},
		{"no-scheme-is-http", with(strings.TrimPrefix(srv.URL, "http://")), ""},
		{"empty", with(""), `"" is not a URL`},
		{"port-in-range", with(srv.URL), ""},
		{"mirror-port", with(srv.URL, "http://127.0.0.1:99999/x"), "mirror http://127.0.0.1:99999/x has port 99999"},
		{"mirror-in-range", with(srv.URL, srv.URL), ""},
		{"mirror-file-port", with("--mirror-file", file("bad-mirrors", "# m\nhttp://127.0.0.1:99999/x\n"), srv.URL), "mirror http://127.0.0.1:99999/x has port 99999"},
		{"mirror-file-in-range", with("--mirror-file", file("mirrors", srv.URL+"\n"), srv.URL), ""},
		{"input-file-port", []string{"get", "-q", "-d", dir, "-i", file("bad-list", srv.URL+"\n  out=a.bin\nhttp://127.0.0.1:99999/x\n")}, "line 3: http://127.0.0.1:99999/x has port 99999"},
		{"input-file-mirror-port", []string{"get", "-q", "-d", dir, "-i", file("bad-list2", srv.URL+"\thttp://h:0/x\n")}, "line 1: mirror http://h:0/x has port 0"},
		{"input-file-in-range", []string{"get", "-q", "--overwrite", "-d", dir, "-i", file("list", srv.URL+"\n  out=b.bin\n")}, ""},
		{"bench-port", []string{"bench", srv.URL, "http://127.0.0.1:99999/x"}, "http://127.0.0.1:99999/x has port 99999"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := checkExit(t, tt.args, tt.says)
			if strings.Contains(out, "hunter2") {
				t.Errorf("a secret in the output: %s", out)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "a.bin")); err == nil {
		t.Error("a list with a bad URL was partly downloaded")
	}
	srv.Verify(t, filepath.Join(dir, "b.bin"))
}

// checkExit runs args and checks that they are refused as a usage error
// saying says, or, for says "", that they succeed without a word.
func checkExit(t *testing.T, args []string, says string) string {
	t.Helper()
	code, out := runCLI(t, args...)
	switch {
	case says == "" && (code != exitOK || out != "" && args[0] == "get"):
		t.Errorf("exit %d, want %d; output:\n%s", code, exitOK, out)
	case says != "" && code != exitUsage:
		t.Errorf("exit %d, want %d; output:\n%s", code, exitUsage, out)
	case says != "" && !strings.Contains(out, says):
		t.Errorf("output %q does not say %q", out, says)
	}
	return out
}

// The command line takes what curl, wget and aria2c users type: a URL
// without "get" or without a scheme, "help", and option mistakes explained
// with the nearest option named.
func TestCommandLineConventions(t *testing.T) {
	srv := testserver.New(t, testserver.Size(64<<10))
	dir := t.TempDir()
	hostPath := strings.TrimPrefix(srv.URL, "http://")
	tests := []struct {
		name string
		args []string
		code int
		says string
	}{
		{"nothing", nil, exitUsage, "USAGE"},
		{"help", []string{"help"}, exitOK, "COMMANDS"},
		{"help-get", []string{"help", "get"}, exitOK, "--connections"},
		{"url-without-get", []string{"-q", "-d", dir, "-o", "a.bin", srv.URL}, exitOK, ""},
		{"url-first", []string{srv.URL, "-q", "-d", dir, "-o", "b.bin"}, exitOK, ""},
		{"no-scheme", []string{"-d", dir, "-o", "c.bin", hostPath}, exitOK, "has no scheme: using " + srv.URL},
		{"continue-and-no-limit", []string{"get", "-c", "--limit-rate", "0", "-q", "-d", dir, "-o", "d.bin", srv.URL}, exitOK, ""},
		{"decimal-rate", []string{"get", "--continue", "--limit-rate", "1.5M", "-q", "-d", dir, "-o", "e.bin", srv.URL}, exitOK, ""},
		{"typo", []string{"get", "--conections", "4", srv.URL}, exitUsage, "unknown option --conections; did you mean --connections?"},
		{"typo-without-get", []string{"--conections", "4", srv.URL}, exitUsage, "did you mean --connections?"},
		{"far-from-anything", []string{"get", "--zzzzzzzz", srv.URL}, exitUsage, "unknown option --zzzzzzzz"},
		{"duration-without-unit", []string{"get", "--stall-timeout", "5", srv.URL}, exitUsage, `--stall-timeout "5": a duration needs a unit`},
		{"missing-value", []string{"get", srv.URL, "-x"}, exitUsage, "--max-per-host (-x) needs a value"},
		{"unknown-command", []string{"fetch", srv.URL}, exitUsage, `unknown command "fetch"`},
		// Files given by the user: plain words, not the system's.
		{"input-file-is-folder", []string{"get", "-i", dir}, exitUsage, dir + " is a folder, not a file"},
		{"mirror-file-missing", []string{"get", "--mirror-file", filepath.Join(dir, "none"), srv.URL}, exitUsage, filepath.Join(dir, "none") + " does not exist"},
		{"ca-cert-is-folder", []string{"get", "--ca-cert", dir, srv.URL}, exitUsage, "is a folder, not a file"},
		{"verify-folder", []string{"verify", "--checksum", "sha256:" + strings.Repeat("00", 32), dir}, exitFailure, "a folder, not a file"},
		{"odd-hex", []string{"get", "--checksum", "sha256:abc", srv.URL}, exitUsage, "is not 64 hexadecimal digits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := runCLI(t, tt.args...)
			if code != tt.code || !strings.Contains(out, tt.says) {
				t.Fatalf("exit %d, want %d saying %q; output:\n%s", code, tt.code, tt.says, out)
			}
			for _, jargon := range []string{"is a directory", "no such file", "encoding/hex"} {
				if strings.Contains(out, jargon) {
					t.Errorf("output speaks a library's language (%q): %s", jargon, out)
				}
			}
			if tt.name == "far-from-anything" && strings.Contains(out, "did you mean") {
				t.Errorf("suggested an option for a word far from all: %s", out)
			}
		})
	}
	for _, name := range []string{"a.bin", "b.bin", "c.bin", "d.bin", "e.bin"} {
		srv.Verify(t, filepath.Join(dir, name))
	}
}

// --version prints a version (not only a commit), and the manual page is
// made from the same definitions as --help.
func TestVersionAndManual(t *testing.T) {
	code, out := runCLI(t, "--version")
	if code != exitOK || !regexp.MustCompile(`^convoy version v?\d+\.\d+\.\d+`).MatchString(out) {
		t.Errorf("--version: exit %d, %q: want a version number", code, out)
	}
	code, out = runCLI(t, "man")
	if code != exitOK || !strings.HasPrefix(out, ".nh\n.TH convoy 1") {
		t.Fatalf("man: exit %d, want a section 1 page: %.200q", code, out)
	}
	for _, f := range newApp(io.Discard, io.Discard).Command("get").Flags {
		if !strings.Contains(out, "--"+f.Names()[0]) {
			t.Errorf("the manual page lacks --%s", f.Names()[0])
		}
	}
}

// The soft memory limit follows what a download holds on purpose, the
// count convoy chooses as it changes, and a GOMEMLIMIT of the user's is
// kept.
func TestLimitMemory(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	t.Setenv("GOMEMLIMIT", "")
	os.Unsetenv("GOMEMLIMIT")
	limitMemory(&convoy.Config{Connections: 16})
	if got, want := debug.SetMemoryLimit(-1), memoryBase+segment.BuffersHeld(16)+16*memoryPerConn; got != want {
		t.Errorf("limit %d for 16 connections, want %d", got, want)
	}
	limitMemory(&convoy.Config{Connections: 4, Writer: io.Discard, Buffer: 64 << 20})
	if got, want := debug.SetMemoryLimit(-1), memoryBase+segment.BuffersHeld(8)+8*memoryPerConn+64<<20; got != want {
		t.Errorf("limit %d for a stream with a 64 MiB buffer, want %d", got, want)
	}
	var seen []string
	cfg := convoy.Config{OnEvent: func(e convoy.Event) { seen = append(seen, e.Type) }}
	limitMemory(&cfg)
	for _, e := range []convoy.Event{
		{Type: "connections", Host: "a", Connections: 16},
		{Type: "connections", Host: "b", Connections: 12},
		{Type: "connections", Host: "a", Connections: 10},
	} {
		cfg.OnEvent(e)
	}
	if got, want := debug.SetMemoryLimit(-1), memoryBase+segment.BuffersHeld(10)+segment.BuffersHeld(12)+22*memoryPerConn; got != want {
		t.Errorf("limit %d after the counts 10 and 12 of two hosts, want %d", got, want)
	}
	if len(seen) != 3 {
		t.Errorf("the events reached the caller %d times, want 3", len(seen))
	}
	t.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetMemoryLimit(1 << 30)
	limitMemory(&convoy.Config{Connections: 16})
	if got := debug.SetMemoryLimit(-1); got != 1<<30 {
		t.Errorf("limit %d: the user's GOMEMLIMIT was replaced", got)
	}
}

// A reset that cost nothing (the connection picks up at once) is counted in
// the summary, not printed; -v prints it.
func TestFreeResetsOnlyWithVerbose(t *testing.T) {
	srv := testserver.New(t, testserver.Size(512<<10), testserver.CutAfter(100<<10, 1))
	dir := t.TempDir()
	for _, tt := range []struct {
		args    []string
		printed bool
	}{
		{[]string{"get", "-n", "1", "-d", dir, "-o", "quiet.bin", srv.URL}, false},
		{[]string{"get", "-v", "-n", "1", "-d", dir, "-o", "verbose.bin", srv.URL}, true},
	} {
		srv.SetOption(testserver.CutAfter(100<<10, 2)) // the probe's answer takes one
		code, out := runCLI(t, tt.args...)
		if code != exitOK || !strings.Contains(out, "1 retry") {
			t.Fatalf("%v: exit %d, want 0 and the retry counted: %s", tt.args, code, out)
		}
		if got := strings.Contains(out, "retrying in 0s"); got != tt.printed {
			t.Errorf("%v: reconnect printed %v, want %v: %s", tt.args, got, tt.printed, out)
		}
	}
}
