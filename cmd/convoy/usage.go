package main

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/urfave/cli/v2"
)

// normalizeArgs turns the ways people call downloaders into convoy's own:
// "convoy URL" and "convoy -n 4 URL" mean "convoy get"; "convoy help [CMD]"
// means "--help". It returns args unchanged when they already name a
// command.
func normalizeArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	if args[1] == "help" {
		if len(args) > 2 && app.Command(args[2]) != nil {
			return []string{args[0], args[2], "--help"}
		}
		return []string{args[0], "--help"}
	}
	get := app.Command("get")
	for i := 1; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			if i+1 < len(args) && looksLikeURL(args[i+1]) {
				return append([]string{args[0], "get"}, args[1:]...)
			}
			return args
		case strings.HasPrefix(a, "-"):
			if isAppFlag(a) {
				return args
			}
			known := get != nil && isFlagOf(get, a)
			if known && takesValue(get, a) || !known && i+1 < len(args) && !looksLikeURL(args[i+1]) && app.Command(args[i+1]) == nil {
				i++ // its value (an unknown option's next word may be one)
			}
			continue
		case app.Command(a) != nil:
			return args
		case looksLikeURL(a):
			return append([]string{args[0], "get"}, args[1:]...)
		}
		return args // a word that is neither: the unknown command it is
	}
	// Only options: those of get, unless they are the app's own.
	return append([]string{args[0], "get"}, args[1:]...)
}

// isFlagOf reports whether option a (typed with its dashes, perhaps with
// "=value") is one of cmd's.
func isFlagOf(cmd *cli.Command, a string) bool {
	name := strings.TrimLeft(strings.SplitN(a, "=", 2)[0], "-")
	for _, f := range cmd.Flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

// takesValue reports whether option a of cmd, typed without "=value",
// takes the next argument as its value.
func takesValue(cmd *cli.Command, a string) bool {
	if strings.Contains(a, "=") {
		return false
	}
	name := strings.TrimLeft(a, "-")
	for _, f := range cmd.Flags {
		for _, n := range f.Names() {
			if n == name {
				_, isBool := f.(*cli.BoolFlag)
				return !isBool
			}
		}
	}
	return false
}

// isAppFlag reports the options convoy itself takes before a command.
func isAppFlag(a string) bool {
	switch strings.SplitN(a, "=", 2)[0] {
	case "-h", "--help", "-v", "--version", "--generate-bash-completion":
		return true
	}
	return false
}

// looksLikeURL tells a download address from a command name: it has a
// scheme, or a dot, a colon or a slash, as host names and paths do.
func looksLikeURL(a string) bool {
	return strings.Contains(a, "://") || strings.ContainsAny(a, ".:/")
}

// withScheme gives an address typed without a scheme http://, as curl does;
// changed reports whether it did.
func withScheme(u string) (string, bool) {
	if strings.Contains(u, "://") || !looksLikeURL(u) {
		return u, false
	}
	return "http://" + u, true
}

var (
	undefinedFlag = regexp.MustCompile(`^flag provided but not defined: -+(.+)$`)
	invalidValue  = regexp.MustCompile(`^invalid value "(.*)" for flag -+([^:]+): (.*)$`)
	needsArgument = regexp.MustCompile(`^flag needs an argument: -+(.+)$`)
)

// explainUsage rewrites the flag package's messages for people: the option
// named as typed on a command line, the nearest known one suggested, and
// what a value lacks.
func explainUsage(cmd *cli.Command, app *cli.App, err error) error {
	msg := err.Error()
	flags := app.Flags
	if cmd != nil {
		flags = cmd.Flags
	}
	if m := undefinedFlag.FindStringSubmatch(msg); m != nil {
		out := fmt.Sprintf("unknown option %s", dashed(m[1]))
		if near := nearestFlag(flags, m[1]); near != "" {
			out += fmt.Sprintf("; did you mean %s?", dashed(near))
		}
		return usagef("%s", out)
	}
	if m := needsArgument.FindStringSubmatch(msg); m != nil {
		return usagef("%s needs a value", fullName(flags, m[1]))
	}
	if m := invalidValue.FindStringSubmatch(msg); m != nil {
		name := fullName(flags, m[2])
		if isDuration(flags, m[2]) {
			return usagef("%s %q: a duration needs a unit, such as 30s, 5m or 1h30m", name, m[1])
		}
		return usagef("%s %q is not a valid value", name, m[1])
	}
	return err
}

// dashed writes an option as it is typed: -x or --name.
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// fullName is the option's long name, with its short one if it has one:
// "--max-per-host (-x)".
func fullName(flags []cli.Flag, name string) string {
	for _, f := range flags {
		names := f.Names()
		for _, n := range names {
			if n != name {
				continue
			}
			long := dashed(names[0])
			if len(names) > 1 {
				return fmt.Sprintf("%s (%s)", long, dashed(names[1]))
			}
			return long
		}
	}
	return dashed(name)
}

func isDuration(flags []cli.Flag, name string) bool {
	for _, f := range flags {
		if d, ok := f.(*cli.DurationFlag); ok {
			for _, n := range d.Names() {
				if n == name {
					return true
				}
			}
		}
	}
	return false
}

// nearestFlag is the known option closest to name by edit distance, if it
// is close enough to be a typo, else "".
func nearestFlag(flags []cli.Flag, name string) string {
	best, bestDist := "", 0
	for _, f := range flags {
		for _, n := range f.Names() {
			if len(n) < 2 {
				continue
			}
			if d := editDistance(name, n); best == "" || d < bestDist {
				best, bestDist = n, d
			}
		}
	}
	if best == "" || bestDist > max(2, len(name)/3) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
