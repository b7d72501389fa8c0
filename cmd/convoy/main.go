// Command convoy downloads files over many HTTP connections at once, resumes
// after any interruption, and never leaves a corrupt file under the final
// name.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/redact"
	"github.com/convoy-dl/convoy/merge"
	"github.com/convoy-dl/convoy/segment"
)

// Exit codes: the causes scripts test most have codes of their own
// (README, "Exit status").
const (
	exitOK          = 0
	exitFailure     = 1 // any other failure, and a batch with failures
	exitUsage       = 2
	exitChecksum    = 3   // the file does not match its checksum
	exitHTTP        = 4   // the server refused: an HTTP 4xx answer
	exitNetwork     = 5   // unreachable, or the retries ran out
	exitDisk        = 6   // no space, or the output cannot be written
	exitInterrupted = 130 // Ctrl-C or SIGTERM; progress is saved
)

// exitCode is the code for err, a failure that is not a usage error.
func exitCode(err error) int {
	var se *segment.StatusError
	var ue *segment.UnreachableError
	var we *segment.WriteError
	switch {
	case errors.Is(err, convoy.ErrInterrupted):
		return exitInterrupted
	case errors.Is(err, merge.ErrChecksum):
		return exitChecksum
	case errors.Is(err, merge.ErrNoSpace), errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT),
		errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS), errors.As(err, &we):
		return exitDisk
	case errors.As(err, &se) && se.Code >= 400 && se.Code < 500:
		return exitHTTP
	case errors.Is(err, segment.ErrGaveUp), errors.As(err, &ue):
		return exitNetwork
	}
	return exitFailure
}

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit code. Reports
// meant for scripts go to stdout, everything else to stderr.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal convoy winds down and saves its progress; a
	// second one, with the default handling restored, ends it at once.
	restore := context.AfterFunc(ctx, stop)
	defer restore()
	app := newApp(stdout, stderr)
	if len(args) < 2 {
		// Plain "convoy": what it takes, and a usage error.
		app.Writer = stderr
		_ = app.Run([]string{"convoy", "--help"}) // help on stderr; nothing to report if it fails
		return exitUsage
	}
	args = normalizeArgs(app, args)
	var err error
	cmd := app.Command(args[1])
	switch {
	case !strings.HasPrefix(args[1], "-") && cmd == nil:
		err = usagef("unknown command %q; see 'convoy --help'", args[1])
	case cmd != nil && len(args) > 2 && strings.HasPrefix(args[len(args)-1], "-") && takesValue(cmd, args[len(args)-1]):
		// Moved in front of the URL, it would take the URL for its value.
		err = usagef("%s needs a value", fullName(cmd.Flags, strings.TrimLeft(args[len(args)-1], "-")))
	default:
		err = app.RunContext(ctx, flagsFirst(app, args))
	}
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	var ue usageError
	if errors.As(err, &ue) || errors.Is(err, convoy.ErrUsage) {
		code = exitUsage
		err = explainUsage(app.Command(args[1]), app, err)
	}
	// One line, whatever errors.Join made of it.
	msg := strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
	fmt.Fprintf(stderr, "convoy: %s\n", redact.Text(msg))
	return code
}

// usageError marks a mistake on the command line.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:                 "convoy",
		Usage:                "download one file over many connections, resumable and crash-safe",
		Version:              version(),
		EnableBashCompletion: true,
		Writer:               stdout,
		ErrWriter:            stderr,
		HideHelpCommand:      true,
		ExitErrHandler:       func(*cli.Context, error) {}, // run prints errors and picks the code
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
		Commands: []*cli.Command{getCommand(stdout, stderr), verifyCommand(stderr), repairCommand(stderr), statusCommand(stdout), benchCommand(stdout, stderr), completionCommand(stdout), manCommand(stdout)},
	}
}
