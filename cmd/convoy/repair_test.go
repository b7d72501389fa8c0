package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/convoy-dl/convoy/internal/testserver"
)

// piecesMeta4 writes a Metalink 4 document of one file served by srv,
// named name, with its SHA-256 piece hashes of length bytes (and its
// whole-file hash with whole).
func piecesMeta4(t *testing.T, srv *testserver.Server, name string, length int, whole, pieces bool) string {
	t.Helper()
	content := srv.Content()
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?><metalink xmlns="urn:ietf:params:xml:ns:metalink"><file name=%q><size>%d</size>`, name, len(content))
	if whole {
		fmt.Fprintf(&b, `<hash type="sha-256">%x</hash>`, sha256.Sum256(content))
	}
	if pieces {
		fmt.Fprintf(&b, `<pieces length="%d" type="sha-256">`, length)
		for off := 0; off < len(content); off += length {
			fmt.Fprintf(&b, "<hash>%x</hash>", sha256.Sum256(content[off:min(off+length, len(content))]))
		}
		b.WriteString("</pieces>")
	}
	fmt.Fprintf(&b, "<url>%s</url></file></metalink>", srv.URL)
	p := filepath.Join(t.TempDir(), name+".meta4")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// damagedCopy writes srv's file to dir/name with the byte at each of
// offs inverted.
func damagedCopy(t *testing.T, srv *testserver.Server, dir, name string, offs ...int64) string {
	t.Helper()
	content := srv.Content()
	for _, o := range offs {
		content[o] ^= 0xff
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRepairCommand: convoy repair, and convoy verify --repair, fetch the
// damaged pieces alone and say which they were and how much came; convoy
// verify --metalink names them and changes nothing (exit 3); an intact
// file is said to be intact.
func TestRepairCommand(t *testing.T) {
	const size, piece = 1 << 20, 64 << 10
	srv := testserver.New(t, testserver.Size(size))
	meta := piecesMeta4(t, srv, "f.bin", piece, true, true)
	for _, cmd := range [][]string{{"repair"}, {"verify", "--repair"}} {
		t.Run(cmd[0], func(t *testing.T) {
			dir := t.TempDir()
			file := damagedCopy(t, srv, dir, "f.bin", 1, 3*piece+2, size-1)
			before := srv.Stats().BodyBytes
			code, out := runCLI(t, "verify", "--metalink", meta, file)
			if code != exitChecksum || !strings.Contains(out, "3 pieces of 16 do not match") || !strings.Contains(out, "3 (bytes 196608-262143)") {
				t.Fatalf("verify --metalink of a damaged file: exit %d: %s", code, out)
			}
			code, out = runCLI(t, append(cmd, "--metalink", meta, file)...)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, out)
			}
			srv.Verify(t, file)
			for _, want := range []string{"repaired " + file, "fetched 192.0 KiB", "3 pieces of 16 were bad: 0 (bytes 0-65535), 3 (bytes 196608-262143), 15 (bytes 983040-1048575)", "all 16 pieces verified"} {
				if !strings.Contains(out, want) {
					t.Errorf("the summary does not say %q: %s", want, out)
				}
			}
			if got := srv.Stats().BodyBytes - before; got != 3*piece+1 { // and the probe's byte
				t.Errorf("the server sent %d bytes, want the 3 pieces' %d and the probe's 1", got, 3*piece)
			}
			code, out = runCLI(t, "verify", "--metalink", meta, file)
			if code != exitOK || !strings.Contains(out, "intact: all 16 pieces match") {
				t.Errorf("verify of the repaired file: exit %d: %s", code, out)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("left beside the file: %v", entries)
			}
		})
	}
}

// TestRepairCommandRefuses: usage mistakes exit 2, a Metalink without
// piece hashes too (saying what to do instead); a file of another size
// exits 1; none of them changes the file.
func TestRepairCommandRefuses(t *testing.T) {
	const size, piece = 256 << 10, 64 << 10
	srv := testserver.New(t, testserver.Size(size))
	meta := piecesMeta4(t, srv, "f.bin", piece, true, true)
	noPieces := piecesMeta4(t, srv, "f.bin", piece, true, false)
	dir := t.TempDir()
	file := damagedCopy(t, srv, dir, "f.bin", 5)
	short := filepath.Join(dir, "short.bin")
	if err := os.WriteFile(short, make([]byte, 100), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		args []string
		code int
		says string
	}{
		{"no-metalink", []string{"repair", file}, exitUsage, "needs --metalink"},
		{"no-file", []string{"repair", "--metalink", meta}, exitUsage, "exactly one FILE"},
		{"two-files", []string{"repair", "--metalink", meta, file, file}, exitUsage, "exactly one FILE"},
		{"no-pieces", []string{"repair", "--metalink", noPieces, file}, exitUsage, "no piece hashes"},
		{"verify-repair-no-metalink", []string{"verify", "--repair", file}, exitUsage, "--repair needs --metalink"},
		{"verify-both", []string{"verify", "--checksum", "sha256:" + strings.Repeat("00", 32), "--metalink", meta, file}, exitUsage, "not both"},
		{"size-mismatch", []string{"repair", "--metalink", meta, short}, exitFailure, "not a copy of that file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out := runCLI(t, tt.args...)
			if code != tt.code || !strings.Contains(out, tt.says) {
				t.Errorf("exit %d, want %d saying %q: %s", code, tt.code, tt.says, out)
			}
		})
	}
	if got, _ := os.ReadFile(file); bytes.Equal(got, srv.Content()) {
		t.Error("a refused repair changed the file")
	}
	if srv.Stats().Gets != 0 {
		t.Error("a refused repair asked the server")
	}
}

// TestRepairKilled SIGKILLs a repair as soon as the file has become its
// part file, then again after a checkpoint recorded progress, and checks
// each time that the file is under one of its two names with nothing
// claimed wrongly; a third run finishes it byte-identical.
func TestRepairKilled(t *testing.T) {
	bin := buildBinary(t)
	const (
		size, piece = 8 << 20, 256 << 10
		rate        = 256 << 10 // per answer
	)
	srv := testserver.New(t, testserver.Size(size), testserver.Rate(rate))
	content := srv.Content()
	meta := piecesMeta4(t, srv, "f.bin", piece, true, true)
	dir := t.TempDir()
	var flips []int64
	for i := int64(0); i < size/piece; i += 2 {
		flips = append(flips, i*piece+i) // every other piece: 4 MiB to fetch
	}
	file := damagedCopy(t, srv, dir, "f.bin", flips...)
	args := []string{"repair", "-q", "-n", "4", "--checkpoint-interval", "50ms", "--metalink", meta, file}
	start := func() *running {
		var out bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r := &running{cmd: cmd, out: &out, exited: make(chan error, 1)}
		go func() { r.exited <- cmd.Wait() }()
		return r
	}
	// The file is always under one of its names, whole.
	check := func(when string) int64 {
		t.Helper()
		_, errOut := os.Stat(file)
		st, errPart := os.Stat(file + ".part")
		switch {
		case errOut == nil && errPart == nil:
			t.Fatalf("%s: both %s and its part file exist", when, file)
		case errOut != nil && errPart != nil:
			t.Fatalf("%s: the file is gone: %v; %v", when, errOut, errPart)
		case errPart == nil && st.Size() != size:
			t.Fatalf("%s: the part file has %d bytes", when, st.Size())
		}
		return checkClaims(t, file, content)
	}

	r := start()
	deadline := time.Now().Add(progressLimit)
	for {
		if _, err := os.Stat(file + ".part"); err == nil {
			break
		}
		select {
		case err := <-r.exited:
			t.Fatalf("the repair ended (%v) before its rename:\n%s", err, r.out)
		case <-time.After(time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no part file appeared")
		}
	}
	r.kill(t)
	claimed := check("killed at the rename")
	t.Logf("killed at the rename: the manifest claims %d bytes", claimed)

	r = start()
	r.waitForClaim(t, file+".convoy", max(claimed, size/2))
	r.kill(t)
	claimed = check("killed after a checkpoint")
	t.Logf("killed after a checkpoint: the manifest claims %d bytes", claimed)

	srv.SetOption(testserver.Rate(0))
	var out bytes.Buffer
	cmd := exec.Command(bin, append([]string{"repair"}, args[1:]...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("final run: %v\n%s", err, out.String())
	}
	srv.Verify(t, file)
	if _, err := os.Stat(file + ".part"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("part file left: %v", err)
	}
	if _, err := os.Stat(file + ".convoy"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("manifest left: %v", err)
	}
	// Only damaged pieces are asked for: past their 4 MiB the server sent
	// what each kill lost, far less than a MiB at these rates.
	if sent := srv.Stats().BodyBytes; sent > size/2+2<<20 {
		t.Errorf("the server sent %d bytes for 4 MiB of damaged pieces", sent)
	}
}
