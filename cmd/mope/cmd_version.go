package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/mopeclip/mopeclip/tensor"
)

func init() {
	register(&command{
		name:    "version",
		summary: "print the version (module version, VCS revision and time, dirty flag), Go runtime and the CPU kernels in use",
		usage:   "[--json]",
		run:     runVersion,
	})
}

// versionInfo is what mope version prints (--json: this object).
type versionInfo struct {
	Module     string `json:"module"`
	Version    string `json:"version"`            // module version, "(devel)" in a build from a work tree
	Revision   string `json:"revision,omitempty"` // VCS revision
	Time       string `json:"time,omitempty"`     // VCS commit time
	Dirty      bool   `json:"dirty"`              // the work tree had uncommitted changes
	Go         string `json:"go"`                 // Go runtime version
	OS         string `json:"os"`                 // GOOS/GOARCH
	GOMAXPROCS int    `json:"gomaxprocs"`
	Kernels    string `json:"kernels"`              // tensor.KernelReport
	Spin       string `json:"spin"`                 // how long idle workers spin ($MOPECLIP_SPIN)
	Tags       string `json:"build_tags,omitempty"` // -tags of the build
}

// buildVersion reads the build information embedded by the Go toolchain.
func buildVersion() versionInfo {
	v := versionInfo{Module: "github.com/mopeclip/mopeclip", Version: "unknown", Go: runtime.Version(),
		OS: runtime.GOOS + "/" + runtime.GOARCH, GOMAXPROCS: runtime.GOMAXPROCS(0), Kernels: tensor.KernelReport()}
	spin, _ := tensor.SpinWait()
	v.Spin = spin.String()
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if bi.Main.Path != "" {
		v.Module = bi.Main.Path
	}
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Dirty = s.Value == "true"
		case "-tags":
			v.Tags = s.Value
		}
	}
	return v
}

// String is the text form: one line of version and build, one of kernels.
func (v versionInfo) String() string {
	rev := "revision unknown (no VCS information in this build: go run, or built outside the repository)"
	if v.Revision != "" {
		rev = "revision " + v.Revision
		if v.Time != "" {
			rev += " (" + v.Time + ")"
		}
		if v.Dirty {
			rev += ", dirty"
		}
	}
	tags := ""
	if v.Tags != "" {
		tags = ", tags " + v.Tags
	}
	return fmt.Sprintf("mope %s %s, %s (%s %s, GOMAXPROCS=%d, workers spin %s%s)\nkernels: %s\n", v.Module, v.Version, rev,
		v.Go, v.OS, v.GOMAXPROCS, v.Spin, tags, v.Kernels)
}

func runVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlags(commands["version"], stderr)
	asJSON := jsonFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	v := buildVersion()
	if *asJSON {
		return writeJSON(stdout, v)
	}
	_, err := fmt.Fprint(stdout, v)
	return err
}

// writeJSON prints v as indented JSON with a final newline.
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
