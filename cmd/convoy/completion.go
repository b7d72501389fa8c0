package main

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"
)

// bashCompletion asks convoy itself for the words that may come next
// (cli/v2's --generate-bash-completion).
const bashCompletion = `# convoy completion for bash; for zsh, run "autoload -U +X bashcompinit && bashcompinit" first.
_convoy_complete() {
  local cur words
  cur="${COMP_WORDS[COMP_CWORD]}"
  if [[ "$cur" == -* ]]; then
    words=$("${COMP_WORDS[@]:0:COMP_CWORD}" "$cur" --generate-bash-completion 2>/dev/null)
  else
    words=$("${COMP_WORDS[@]:0:COMP_CWORD}" --generate-bash-completion 2>/dev/null)
  fi
  COMPREPLY=($(compgen -W "${words}" -- "${cur}"))
}
complete -o default -o bashdefault -F _convoy_complete convoy
`

func completionCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print the shell completion script (bash, or zsh with bashcompinit)",
		ArgsUsage: "bash|zsh",
		Action: func(c *cli.Context) error {
			switch c.Args().First() {
			case "bash", "zsh", "":
				_, err := fmt.Fprint(stdout, bashCompletion)
				return err
			}
			return usagef("completion: unknown shell %q (bash or zsh)", c.Args().First())
		},
	}
}

// manCommand prints convoy's manual page (roff), generated from the same
// command and option definitions as --help: make man writes it to a file.
func manCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:   "man",
		Usage:  "print the manual page (roff; make man writes bin/convoy.1)",
		Hidden: true,
		Action: func(c *cli.Context) error {
			page, err := c.App.ToManWithSection(1)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(stdout, page)
			return err
		},
	}
}
