// Command mope is the MoPE-CLIP tool: CLIP inference, evaluation, MoPE
// scoring, structured pruning, distillation and benchmarks, in one binary.
//
// Each sub-command lives in its own file and adds itself to the command table
// with register from an init function.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// command is one sub-command of mope.
type command struct {
	name    string
	summary string
	// usage is the argument synopsis shown in help, e.g. "--model DIR [--text STR]...".
	usage string
	// run executes the command; args excludes the command name. It returns
	// errUsage (wrapped or not) for bad flags, which prints the help.
	run func(args []string, stdout, stderr io.Writer) error
}

var commands = map[string]*command{}

// register adds c to the command table; it is called from init functions.
func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("mope: command registered twice: " + c.name)
	}
	commands[c.name] = c
}

// errUsage marks an error in how a command was called.
var errUsage = errors.New("usage error")

// newFlags returns a flag set for command c that reports errors instead of
// exiting, with a help text that states the synopsis.
func newFlags(c *command, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("mope "+c.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: mope %s %s\n\n%s\n\nflags:\n", c.name, c.usage, c.summary)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and maps flag errors to errUsage (help already printed).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "mope: structured pruning of CLIP with the MoPE metric (CVPR 2024), in Go.")
	fmt.Fprintln(w, "\nusage: mope <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'mope <command> --help' for a command's flags.")
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process exit, for tests.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				c.run([]string{"--help"}, stdout, stderr)
				return 0
			}
		}
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "mope: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	err := c.run(args[1:], stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		msg := strings.TrimPrefix(err.Error(), errUsage.Error()+": ")
		fmt.Fprintf(stderr, "mope %s: %s\n(run 'mope %s --help' for usage)\n", c.name, msg, c.name)
		return 2
	default:
		fmt.Fprintf(stderr, "mope %s: %v\n", c.name, err)
		return 1
	}
}
