package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// subcommands lists the sub-commands that have flag sets of their own.
var subcommands = map[string][]string{
	"score": {"merge"},
	"data":  {"export", "preview", "inspect"},
}

// invocation is one command line whose flag set the vocabulary test reads.
type invocation struct {
	name string   // "score", "score merge"
	args []string // without --help
}

func invocations() []invocation {
	var out []invocation
	for name := range commands {
		out = append(out, invocation{name, []string{name}})
		for _, sub := range subcommands[name] {
			out = append(out, invocation{name + " " + sub, []string{name, sub}})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// flagSets runs every command and sub-command with --help and returns the
// flag set each one parsed.
func flagSets(t *testing.T) map[string]*flag.FlagSet {
	t.Helper()
	sets := map[string]*flag.FlagSet{}
	defer func() { parseHook = nil }()
	for _, inv := range invocations() {
		var got *flag.FlagSet
		parseHook = func(fs *flag.FlagSet) { got = fs }
		var out, errb bytes.Buffer
		code := run(append(slices.Clone(inv.args), "--help"), &out, &errb)
		if code != 0 || got == nil {
			t.Fatalf("mope %s --help: exit %d, flag set seen %v, stderr %q", inv.name, code, got != nil, errb.String())
		}
		sets[inv.name] = got
	}
	return sets
}

// flagKind is a flag's value type, e.g. "*flag.intValue", "*main.towerValue".
func flagKind(f *flag.Flag) string { return fmt.Sprintf("%T", f.Value) }

// vocabulary is the one meaning of each shared flag (docs/cli.md): its
// value type, its default (where it is the same everywhere) and a phrase
// its help must contain.
var vocabulary = map[string]struct {
	kind     string
	def      *string // nil: the default may differ between commands
	mustSay  string
	explains string
}{
	"tower":   {kind: "*main.towerValue", explains: "vision|text|both (image: deprecated alias of vision)"},
	"model":   {kind: "*flag.stringValue", def: ptr(""), mustSay: "DIR", explains: "a model directory"},
	"data":    {kind: "*flag.stringValue", explains: "dataset file, image folder, or shapes"},
	"split":   {kind: "*flag.stringValue", mustSay: "split", explains: "dataset split only"},
	"limit":   {kind: "*flag.intValue", explains: "first N images; 0 = all"},
	"vocab":   {kind: "*flag.stringValue", def: ptr(os.Getenv(VocabEnv)), mustSay: "$" + VocabEnv, explains: "tokenizer; default $MOPECLIP_VOCAB"},
	"out":     {kind: "*flag.stringValue", explains: "where results go"},
	"seed":    {kind: "*flag.uint64Value", explains: "seed of everything random"},
	"device":  {kind: "*cuda.Device", def: ptr("cpu"), explains: "cpu|cuda|cuda:tf32"},
	"threads": {kind: "*flag.intValue", def: ptr("0"), mustSay: "0: GOMAXPROCS", explains: "worker threads"},
	"quiet":   {kind: "*flag.boolValue", def: ptr("false"), explains: "no progress"},
	"json":    {kind: "*flag.boolValue", def: ptr("false"), explains: "one JSON object on stdout"},
	"engine":  {kind: "*mope.Engine", def: ptr("auto"), explains: "auto|fast|ref"},
	"metric":  {kind: "*mope.Metric", def: ptr("mope"), explains: "importance metric"},
	"order":   {kind: "*mope.Order", explains: "pruning order"},
	"stage":   {kind: "*mope.Stage", explains: "pipeline stage"},
	"batch":   {kind: "*flag.intValue", explains: "items per forward pass or training step"},
	"resume":  {kind: "*flag.boolValue", def: ptr("false"), explains: "continue a checkpointed run"},
}

func ptr(s string) *string { return &s }

// limitExceptions are the --limit flags whose 0 does not mean "all", with
// the reason.
var limitExceptions = map[string]string{
	"data preview": "a contact sheet: 1 to 1024 images, a whole split would not fit",
}

// retiredNames are old spellings: they may only exist as deprecated
// aliases (until the next release removes them).
var retiredNames = map[string]string{
	"towers":     "tower",
	"tokenizer":  "vocab",
	"ckpt-every": "checkpoint-every",
	"n":          "limit",
}

// resultCommands print a result (not only a file or a log). Each needs
// --json, except those in jsonNative (they print JSON already) and in
// pendingJSON (not done yet; the list may only shrink: the test fails when
// one of them has --json and is still listed).
var (
	resultCommands = []string{"bench", "data inspect", "demo", "distill", "embed", "eval", "info", "pipeline",
		"prune", "score", "score merge", "tokenize", "version"}
	jsonNative  = []string{"embed", "tokenize"}
	pendingJSON = []string{}
)

func TestFlagVocabulary(t *testing.T) {
	sets := flagSets(t)
	kinds := map[string]map[string][]string{} // flag → kind → commands
	for cmd, fs := range sets {
		fs.VisitAll(func(f *flag.Flag) {
			where := fmt.Sprintf("mope %s --%s", cmd, f.Name)
			if strings.TrimSpace(f.Usage) == "" {
				t.Errorf("%s has no help text", where)
			}
			if a, ok := isAlias(f); ok {
				if fs.Lookup(a.new) == nil {
					t.Errorf("%s is an alias of a missing --%s", where, a.new)
				}
				return
			}
			if newName, retired := retiredNames[f.Name]; retired {
				t.Errorf("%s: a retired spelling, use --%s (register the old one with deprecatedFlag)", where, newName)
			}
			if kinds[f.Name] == nil {
				kinds[f.Name] = map[string][]string{}
			}
			kinds[f.Name][flagKind(f)] = append(kinds[f.Name][flagKind(f)], cmd)
			v, shared := vocabulary[f.Name]
			if !shared {
				return
			}
			if flagKind(f) != v.kind {
				t.Errorf("%s is a %s, the vocabulary says %s (%s)", where, flagKind(f), v.kind, v.explains)
			}
			if v.def != nil && f.DefValue != *v.def {
				t.Errorf("%s defaults to %q, the vocabulary says %q", where, f.DefValue, *v.def)
			}
			if v.mustSay != "" && !strings.Contains(f.Usage, v.mustSay) {
				t.Errorf("%s: help %q does not say %q", where, f.Usage, v.mustSay)
			}
			if f.Name == "limit" && limitExceptions[cmd] == "" && !strings.Contains(f.Usage, "0: all") {
				t.Errorf("%s: help %q does not say that 0 means all", where, f.Usage)
			}
		})
	}
	// One name, one kind of value: --checkpoint-every is the documented
	// exception (steps for training, a duration for scoring).
	for name, byKind := range kinds {
		if len(byKind) < 2 {
			continue
		}
		if name == "checkpoint-every" && len(byKind) == 2 && byKind["*flag.intValue"] != nil &&
			slices.Equal(byKind["*flag.durationValue"], []string{"score"}) {
			continue
		}
		t.Errorf("--%s means different things: %v", name, byKind)
	}
	for _, cmd := range resultCommands {
		fs := sets[cmd]
		if fs == nil {
			t.Errorf("result command %q does not exist", cmd)
			continue
		}
		has := fs.Lookup("json") != nil
		switch {
		case slices.Contains(jsonNative, cmd):
		case slices.Contains(pendingJSON, cmd) && has:
			t.Errorf("mope %s has --json now: remove it from pendingJSON", cmd)
		case !slices.Contains(pendingJSON, cmd) && !has:
			t.Errorf("mope %s prints results but has no --json", cmd)
		}
	}
}

// TestDeprecatedSpellings: an old spelling still works, sets the new flag
// and warns once on stderr.
func TestDeprecatedSpellings(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var warn bytes.Buffer
	fs.SetOutput(&warn)
	vocab := vocabFlag(fs, "tokenizer `PATH`")
	tw := towerFlag(fs, 0, "towers")
	deprecatedFlag(fs, "towers", "tower")
	q := quietFlag(fs)
	deprecatedFlag(fs, "silent", "quiet")
	if err := parseFlags(fs, []string{"--tokenizer", "v.txt.gz", "--towers", "image", "--silent"}); err != nil {
		t.Fatal(err)
	}
	if *vocab != "v.txt.gz" || tw.String() != "vision" || !*q {
		t.Errorf("vocab %q tower %q quiet %v", *vocab, tw, *q)
	}
	for _, want := range []string{"--tokenizer is deprecated, use --vocab", "--towers is deprecated, use --tower",
		"--tower image is deprecated, use vision", "--silent is deprecated, use --quiet"} {
		if !strings.Contains(warn.String(), want) {
			t.Errorf("no warning %q in %q", want, warn.String())
		}
	}
	if !flagSet(fs, "vocab") || flagSet(fs, "json") {
		t.Error("flagSet does not follow aliases")
	}
}

func TestHelpAndExitCodes(t *testing.T) {
	for _, inv := range invocations() {
		for _, args := range [][]string{append(slices.Clone(inv.args), "--help"), append([]string{"help"}, inv.args...), append(slices.Clone(inv.args), "-h")} {
			code, out, errs := runMope(args...)
			if code != 0 || !strings.HasPrefix(out, "usage: mope "+inv.name+" ") || errs != "" {
				t.Errorf("mope %s: exit %d, stdout %.60q, stderr %q; want help on stdout, exit 0", strings.Join(args, " "), code, out, errs)
			}
			if strings.Contains(out, "deprecated spelling of") {
				t.Errorf("mope %s lists deprecated spellings as flags", strings.Join(args, " "))
			}
		}
	}
	for _, c := range []struct {
		args []string
		code int
		out  bool // stdout expected
	}{
		{[]string{"help"}, 0, true},
		{[]string{"--help"}, 0, true},
		{[]string{}, 2, false},
		{[]string{"help", "bogus"}, 2, false},
		{[]string{"bogus"}, 2, false},
		{[]string{"score", "--bogus"}, 2, false},
		{[]string{"score", "--tower", "audio", "--model", "m", "--out", "o"}, 2, false},
		{[]string{"score", "--metric", "bogus"}, 2, false},
		{[]string{"eval", "--device", "tpu"}, 2, false},
		{[]string{"eval", "--limit", "-1", "--model", "m", "--data", "shapes"}, 2, false},
		{[]string{"version", "extra"}, 2, false},
	} {
		code, out, errs := runMope(c.args...)
		if code != c.code || (out != "") != c.out || (code != 0 && errs == "") {
			t.Errorf("mope %v: exit %d (want %d), stdout %.40q, stderr %.80q", c.args, code, c.code, out, errs)
		}
	}
}

// TestScoreChecksFlagsFirst: a usage error is reported before any device
// or file is opened.
func TestScoreChecksFlagsFirst(t *testing.T) {
	code, _, errs := runMope("score", "--device", "cuda", "--model", "m")
	if code != 2 || !strings.Contains(errs, "--out is required") || strings.Contains(errs, "cuda") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runMope("version")
	if code != 0 || !strings.Contains(out, "github.com/mopeclip/mopeclip") || !strings.Contains(out, "kernels: ") {
		t.Errorf("exit %d: %q", code, out)
	}
	code, out, _ = runMope("version", "--json")
	if code != 0 || !strings.Contains(out, `"kernels"`) || !strings.Contains(out, `"dirty"`) {
		t.Errorf("--json: exit %d: %q", code, out)
	}
}

// TestCLIDoc checks the command reference in docs/cli.md against the flag
// sets; MOPECLIP_UPDATE_DOCS=1 go test -run TestCLIDoc ./cmd/mope rewrites it.
func TestCLIDoc(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "cli.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- BEGIN GENERATED REFERENCE (TestCLIDoc) -->\n", "<!-- END GENERATED REFERENCE -->\n"
	doc := string(b)
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		t.Fatalf("%s has no generated reference between %q and %q", path, begin, end)
	}
	want := commandReference(t)
	if got := doc[i+len(begin) : j]; got != want {
		if os.Getenv("MOPECLIP_UPDATE_DOCS") == "1" {
			if err := os.WriteFile(path, []byte(doc[:i+len(begin)]+want+doc[j:]), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Errorf("%s's command reference is out of date: run MOPECLIP_UPDATE_DOCS=1 go test -run TestCLIDoc ./cmd/mope", path)
	}
}

// commandReference is the generated part of docs/cli.md: each command's
// help, as mope CMD --help prints it, with the environment's defaults
// replaced by their names.
func commandReference(t *testing.T) string {
	var b strings.Builder
	for _, inv := range invocations() {
		_, out, _ := runMope(append(slices.Clone(inv.args), "--help")...)
		if v := os.Getenv(VocabEnv); v != "" {
			out = strings.ReplaceAll(out, fmt.Sprintf(" (default %q)", v), "")
		}
		fmt.Fprintf(&b, "### mope %s\n\n```\n%s```\n\n", inv.name, out)
	}
	return b.String()
}

// TestReadmeCommands checks the README's command table against the command
// table: every registered command is named in its first column, and nothing
// else is (the flags themselves are in docs/cli.md, checked by TestCLIDoc).
func TestReadmeCommands(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, "\n## Commands\n")
	if i < 0 {
		t.Fatal("README.md has no \"## Commands\" section")
	}
	section := text[i+1:]
	if j := strings.Index(section[3:], "\n## "); j >= 0 {
		section = section[:j+3]
	}
	named := map[string]bool{}
	cell := regexp.MustCompile("`([a-z]+)`")
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 || strings.HasPrefix(strings.TrimSpace(cells[1]), "---") {
			continue
		}
		for _, m := range cell.FindAllStringSubmatch(cells[1], -1) {
			named[m[1]] = true
		}
	}
	for name := range commands {
		if !named[name] {
			t.Errorf("README.md's command table does not name mope %s", name)
		}
		delete(named, name)
	}
	for name := range named {
		t.Errorf("README.md's command table names %q, which is not a mope command", name)
	}
}
