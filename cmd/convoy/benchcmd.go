package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/units"
)

func benchCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "bench",
		Usage:     "measure mirrors of one file and rank them",
		ArgsUsage: "URL...",
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "duration", Usage: "time spent measuring each mirror's throughput, per connection count", Value: 5 * time.Second},
			&cli.StringFlag{Name: "bytes", Usage: "also stop a measurement after `SIZE` bytes (K, M, G suffixes)"},
			&cli.IntFlag{Name: "connections", Aliases: []string{"n"}, Usage: "connections for the parallel measurement", Value: 8},
			&cli.BoolFlag{Name: "parallel", Usage: "measure the mirrors at the same time (they then share the link)"},
			&cli.BoolFlag{Name: "json", Usage: "print the reports as JSON"},
			&cli.IntFlag{Name: "top", Usage: "print only the `K` fastest mirrors' URLs, one a line"},
			&cli.BoolFlag{Name: "insecure", Usage: "do NOT verify TLS certificates"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usagef("bench takes one or more URLs of the same file")
			}
			for _, u := range c.Args().Slice() {
				if err := convoy.CheckURL(u); err != nil {
					return usagef("%v", err)
				}
			}
			// 0 would mean "the default" to convoy.BenchConfig; on the
			// command line it is a mistake, as is anything negative.
			if c.Duration("duration") <= 0 {
				return usagef("--duration must be a duration above zero, such as 5s")
			}
			if n := c.Int("connections"); n < 1 || n > convoy.MaxConnections {
				return usagef("--connections must be between 1 and %d", convoy.MaxConnections)
			}
			if c.IsSet("top") && c.Int("top") < 1 {
				return usagef("--top must be at least 1")
			}
			bc := convoy.BenchConfig{
				URLs: c.Args().Slice(), Duration: c.Duration("duration"), Connections: c.Int("connections"),
				Parallel: c.Bool("parallel"), Insecure: c.Bool("insecure"),
			}
			if v := c.String("bytes"); v != "" {
				n, err := units.ParseSize(v)
				if err != nil {
					return usagef("--bytes: %v", err)
				}
				bc.Bytes = n
			}
			reports, err := convoy.BenchMirrors(c.Context, bc)
			if err != nil {
				return err
			}
			switch {
			case c.Int("top") > 0:
				return printTop(stdout, stderr, reports, c.Int("top"))
			case c.Bool("json"):
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(reports)
			default:
				printBench(stdout, reports)
			}
			return nil
		},
	}
}

// printTop prints the URLs of the k fastest mirrors that agree, one a line,
// for convoy get; every mirror left out is named on stderr with its reason.
// With none to print it fails, so that a script never gets an empty list.
func printTop(stdout, stderr io.Writer, reports []convoy.MirrorReport, k int) error {
	printed := 0
	for _, r := range reports {
		switch {
		case r.Error != "":
			fmt.Fprintf(stderr, "convoy: left out %s: %s\n", r.URL, r.Error)
		case !r.Agrees:
			fmt.Fprintf(stderr, "convoy: left out %s: %s\n", r.URL, r.Disagrees)
		case printed < k:
			fmt.Fprintln(stdout, r.RawURL())
			printed++
		}
	}
	if printed == 0 {
		return fmt.Errorf("no usable mirror among the %d measured", len(reports))
	}
	return nil
}

func printBench(w io.Writer, reports []convoy.MirrorReport) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RANK\tMIRROR\tTTFB\t1 CONN\tN CONNS\tRANGES\tSIZE\t503/429\tAGREES\tERROR")
	for i, r := range reports {
		if r.Error != "" {
			fmt.Fprintf(tw, "-\t%s\t\t\t\t\t\t%d\t\t%s\n", r.URL, r.Busy, r.Error)
			continue
		}
		agrees := "yes"
		if !r.Agrees {
			agrees = "no: " + r.Disagrees
		}
		fmt.Fprintf(tw, "%d\t%s\t%.0f ms\t%s/s\t%s/s (%d)\t%v\t%s\t%d\t%s\t\n", i+1, r.URL, r.TTFB*1000,
			units.FormatBytes(int64(r.Single)), units.FormatBytes(int64(r.Parallel)), r.Connections, r.Ranges, units.FormatBytes(r.Size), r.Busy, agrees)
	}
	_ = tw.Flush() // stdout gone: nothing left to tell
}
