package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// flagsFirst moves the options that follow positional arguments of a
// subcommand in front of them, so that "convoy get URL -o x" works like
// "convoy get -o x URL" (cli/v2 stops parsing options at the first
// positional argument). Everything after "--" stays as it is.
func flagsFirst(app *cli.App, args []string) []string {
	// Shell completion asks with this flag last; it must stay last.
	const complete = "--generate-bash-completion"
	if n := len(args); n > 0 && args[n-1] == complete {
		return append(flagsFirst(app, args[:n-1]), complete)
	}
	if len(args) < 2 {
		return args
	}
	var cmd *cli.Command
	at := 1
	for ; at < len(args); at++ {
		if !strings.HasPrefix(args[at], "-") {
			cmd = app.Command(args[at])
			break
		}
	}
	if cmd == nil {
		return args
	}
	takesValue := map[string]bool{}
	for _, f := range cmd.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, name := range f.Names() {
			takesValue[name] = !isBool
		}
	}
	var flags, positional []string
	rest := args[at+1:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		switch {
		case a == "--":
			positional = append(positional, rest[i:]...)
			i = len(rest)
		case len(a) > 1 && strings.HasPrefix(a, "-"):
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && takesValue[name] && i+1 < len(rest) {
				i++
				flags = append(flags, rest[i])
			}
		default:
			positional = append(positional, a)
		}
	}
	out := append([]string{}, args[:at+1]...)
	out = append(out, flags...)
	return append(out, positional...)
}
