package main

import (
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/convoy-dl/convoy"
)

func verifyCommand(stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "check a file on disk against a checksum, or the piece hashes of a Metalink (--repair: and mend it)",
		ArgsUsage: "FILE",
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "checksum", Usage: "expected `ALGO:HEX` (md5, sha1, sha256, sha512; also sha-256=BASE64)"},
			metalinkPiecesFlag(),
			&cli.BoolFlag{Name: "repair", Usage: "with --metalink, fetch again the pieces that fail and write them back (as convoy repair)"},
		}, downloadFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("verify takes exactly one FILE (got %d arguments)", c.NArg())
			}
			switch {
			case c.String("checksum") != "" && c.String("metalink") != "":
				return usagef("give --checksum or --metalink, not both")
			case c.Bool("repair") && c.String("metalink") == "":
				return usagef("--repair needs --metalink FILE|URL: the Metalink with the file's piece hashes")
			case c.String("metalink") != "":
				return repairFile(c, stderr, c.Bool("repair"))
			case c.String("checksum") == "":
				return usagef("verify needs --checksum ALGO:HEX, or --metalink FILE|URL for the file's piece hashes")
			}
			out := newReporter(stderr, false, terminal(stderr, true))
			start := time.Now()
			sum, err := convoy.VerifyFile(c.Args().First(), c.String("checksum"), func(done, size int64) {
				out.progress(convoy.Progress{Size: size, Done: done, Elapsed: time.Since(start)})
			})
			out.finish(err == nil)
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "convoy: %s: OK (%s)\n", c.Args().First(), sum)
			return nil
		},
	}
}
