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
	"regexp"
	"sort"
	"strings"

	"github.com/mopeclip/mopeclip/tensor"
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
// exiting. Its output (stderr) receives deprecation warnings; the help text
// (usage line, summary, flags) goes to stdout through parseFlags.
func newFlags(c *command, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("mope "+c.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: mope %s %s\n\n%s\n\nflags:\n", c.name, c.usage, c.summary)
		printFlags(fs, w)
	}
	return fs
}

// helpError is returned by parseFlags for --help (-h): it carries the help
// text, which run prints on stdout with exit status 0.
type helpError struct{ text string }

func (h *helpError) Error() string { return "help requested" }
func (h *helpError) Unwrap() error { return flag.ErrHelp }

// parseHook, when set (by tests), sees every flag set after parsing.
var parseHook func(fs *flag.FlagSet)

// parseFlags parses args. It returns a *helpError (wrapping flag.ErrHelp)
// for --help, and a usage error (errUsage) naming the flag for bad flags;
// it prints nothing itself.
func parseFlags(fs *flag.FlagSet, args []string) error {
	out, usage := fs.Output(), fs.Usage
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.SetOutput(out)
	fs.Usage = usage
	if parseHook != nil {
		parseHook(fs)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		var b strings.Builder
		fs.SetOutput(&b)
		fs.Usage()
		fs.SetOutput(out)
		return &helpError{b.String()}
	}
	// The flag package names flags with one dash; the help uses two.
	return fmt.Errorf("%w: %s", errUsage, flagDash.ReplaceAllString(err.Error(), "$1--$2"))
}

// flagDash finds "-name" in the flag package's error messages.
var flagDash = regexp.MustCompile(`(flag |for |: )-([[:alnum:]])`)

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

// Exit statuses.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2   // bad command line
	exitInterrupted = 130 // SIGINT/SIGTERM (128 + SIGINT), after a checkpoint where there is one
)

// run is main without the process exit, for tests.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help" {
		if len(args) == 1 {
			usage(stdout)
			return exitOK
		}
		// mope help X [sub]: X's help, as mope X [sub] --help prints it.
		if _, ok := commands[args[1]]; !ok {
			fmt.Fprintf(stderr, "mope help: unknown command %q (run 'mope help' for the list)\n", args[1])
			return exitUsage
		}
		return run(append(append([]string{args[1]}, args[2:]...), "--help"), stdout, stderr)
	}
	if _, err := tensor.SpinWait(); err != nil {
		fmt.Fprintf(stderr, "mope: %v\n", err)
		return exitUsage
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "mope: unknown command %q\n\n", args[0])
		usage(stderr)
		return exitUsage
	}
	err := c.run(args[1:], stdout, stderr)
	var help *helpError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &help):
		fmt.Fprint(stdout, help.text)
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errUsage):
		msg := strings.TrimPrefix(err.Error(), errUsage.Error()+": ")
		fmt.Fprintf(stderr, "mope %s: %s\n(run 'mope %s --help' for usage)\n", c.name, msg, c.name)
		return exitUsage
	case isInterrupted(err):
		fmt.Fprintf(stderr, "mope %s: %v\n", c.name, err)
		return exitInterrupted
	default:
		fmt.Fprintf(stderr, "mope %s: %v\n", c.name, err)
		return exitFailure
	}
}
