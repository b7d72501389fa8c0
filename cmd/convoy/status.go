package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/redact"
	"github.com/convoy-dl/convoy/internal/units"
)

func statusCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show how far a partial download has come",
		ArgsUsage: "FILE",
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("status takes exactly one FILE (got %d arguments)", c.NArg())
			}
			st, err := convoy.ReadStatus(c.Args().First())
			if err != nil {
				return err
			}
			printStatus(stdout, st)
			return nil
		},
	}
}

func printStatus(w io.Writer, st convoy.Status) {
	pct := func(done, size int64) float64 {
		if size == 0 {
			return 100
		}
		return 100 * float64(done) / float64(size)
	}
	fmt.Fprintf(w, "file:          %s\n", st.Output)
	fmt.Fprintf(w, "url:           %s\n", st.URL)
	if st.FinalURL != "" && st.FinalURL != st.URL {
		fmt.Fprintf(w, "redirected to: %s\n", st.FinalURL)
	}
	fmt.Fprintf(w, "done:          %s of %s (%.1f%%)\n", units.FormatBytes(st.Done), units.FormatBytes(st.Size), pct(st.Done, st.Size))
	if st.ETag != "" {
		fmt.Fprintf(w, "etag:          %s\n", st.ETag)
	}
	if st.LastModified != "" {
		fmt.Fprintf(w, "last-modified: %s\n", st.LastModified)
	}
	if st.HashAlgo != "" {
		fmt.Fprintf(w, "checksum:      %s computed over the first %s\n", st.HashAlgo, units.FormatBytes(st.HashPos))
	}
	switch {
	case st.PartSize < 0:
		fmt.Fprintf(w, "part file:     %s is missing: a resume fetches everything again\n", st.Part)
	case st.PartSize < st.Size:
		fmt.Fprintf(w, "part file:     %s is shorter than the manifest says: a resume fetches the missing bytes\n", st.Part)
	}
	var mirrors []string
	if len(st.Servers) > 0 {
		fmt.Fprintf(w, "servers:\n")
	}
	for _, sv := range st.Servers {
		validators := strings.TrimSpace(strings.Join([]string{sv.ETag, sv.LastModified}, " "))
		fmt.Fprintf(w, "  %s  sent %s  %s\n", sv.URL, units.FormatBytes(sv.Sent), validators)
		if sv.URL != st.URL {
			mirrors = append(mirrors, sv.URL)
		}
	}
	fmt.Fprintf(w, "segments:\n")
	for _, s := range st.Segments {
		fmt.Fprintf(w, "  %10s to %-10s %6.1f%%  (bytes %d-%d)\n", units.FormatBytes(s.Start), units.FormatBytes(s.End),
			pct(s.Written, s.End-s.Start), s.Start, s.End-1)
	}
	if st.Running {
		holder := "another process"
		if st.PID > 0 {
			holder = fmt.Sprintf("process %d", st.PID)
			if cmd := commandLine(st.PID); cmd != "" {
				holder += " (" + cmd + ")"
			}
		}
		fmt.Fprintf(w, "running:       yes, in %s; it saves its progress as it goes\n", holder)
		return
	}
	urls := "'" + st.URL + "'"
	for _, m := range mirrors {
		urls += " '" + m + "'"
	}
	note := ""
	if strings.Contains(urls, "REDACTED") {
		note = "  # put back the secrets the manifest does not keep"
	}
	conns := ""
	if st.Connections > 0 {
		conns = fmt.Sprintf("-n %d ", st.Connections)
	}
	fmt.Fprintf(w, "resume with:   convoy get %s-o %s %s%s\n", conns, shellQuote(st.Output), urls, note)
}

// commandLine is the command line of process pid as ps shows it, or "".
func commandLine(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return ""
	}
	return redact.Text(strings.TrimSpace(strings.ReplaceAll(string(data), "\x00", " ")))
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
