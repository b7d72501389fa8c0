package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/units"
)

func repairCommand(stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "repair",
		Usage:     "fetch again only the pieces of a file that fail the piece hashes of its Metalink",
		ArgsUsage: "FILE",
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
		Flags: append([]cli.Flag{metalinkPiecesFlag()}, downloadFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("repair takes exactly one FILE (got %d arguments)", c.NArg())
			}
			return repairFile(c, stderr, true)
		},
	}
}

// metalinkPiecesFlag is the Metalink of repair and verify.
func metalinkPiecesFlag() cli.Flag {
	return &cli.StringFlag{Name: "metalink", Usage: "the Metalink (`FILE|URL`) with the file's piece hashes and addresses"}
}

// notForRepair are the options of get that mean nothing to a repair: it
// writes one file, the one named, verified by the Metalink's hashes.
var notForRepair = []string{"output", "buffer", "dir", "checksum", "checksum-file", "remove-on-error", "restart",
	"continue", "overwrite", "json", "input-file", "jobs", "metalink"}

// downloadFlags are the options of get that shape the download of a
// repair: connections, mirrors, headers, TLS, proxies, retries.
func downloadFlags() []cli.Flag {
	var out []cli.Flag
	for _, f := range getCommand(io.Discard, io.Discard).Flags {
		if !slices.Contains(notForRepair, f.Names()[0]) {
			out = append(out, f)
		}
	}
	return out
}

// repairFile repairs the file c names with the Metalink of --metalink, or
// with fix unset only checks its pieces, and prints what it found.
func repairFile(c *cli.Context, stderr io.Writer, fix bool) error {
	if c.String("metalink") == "" {
		return usagef("%s needs --metalink FILE|URL: the Metalink with the file's piece hashes", c.Command.Name)
	}
	out := newReporter(stderr, c.Bool("quiet"), terminal(stderr, true))
	cfg, err := configFromFlags(c, out)
	if err != nil {
		return err
	}
	cfg.Metalink, cfg.Output, cfg.Dir = c.String("metalink"), c.Args().First(), ""
	var last time.Duration
	cfg.OnProgress = func(p convoy.Progress) {
		if p.Elapsed < last {
			out.finish(true) // the check is over: the download's own display follows
		}
		last = p.Elapsed
		out.progress(p)
	}
	limitMemory(&cfg)
	run := convoy.CheckPieces
	if fix {
		run = convoy.Repair
	}
	res, err := run(c.Context, cfg)
	out.finish(err == nil)
	if err != nil {
		return err
	}
	if res.Intact {
		out.logf("%s: intact: all %d pieces match the metalink (%s checked in %s)", res.Path, res.Pieces,
			units.FormatBytes(res.Size), res.Elapsed.Round(time.Millisecond))
		return nil
	}
	how := "repaired"
	if res.Continued {
		how = "finished the interrupted repair of"
	}
	extra := []string{fmt.Sprintf("all %d pieces verified", res.Pieces)}
	if res.Download.Retries > 0 {
		extra = append(extra, count(res.Download.Retries, "retry", "retries"))
	}
	out.logf("%s %s: fetched %s in %s (%s); %s of %d were bad: %s", how, res.Path, units.FormatBytes(res.Fetched),
		res.Elapsed.Round(time.Millisecond), strings.Join(extra, ", "), count(len(res.Bad), "piece", "pieces"), res.Pieces, pieceList(res.Bad))
	return nil
}

// maxPiecesShown bounds the pieces a summary names.
const maxPiecesShown = 20

// pieceList names pieces for the summary: the first few, then how many
// more.
func pieceList(ps []convoy.Piece) string {
	var names []string
	for i, p := range ps {
		if i == maxPiecesShown {
			names = append(names, "and "+count(len(ps)-i, "more", "more"))
			break
		}
		names = append(names, p.String())
	}
	return strings.Join(names, ", ")
}
