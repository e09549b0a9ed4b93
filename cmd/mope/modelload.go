package main

import (
	"fmt"
	"io"

	"github.com/mopeclip/mopeclip/clip"
)

// openModel loads a model directory (Hugging Face or open_clip layout)
// with loadModel's errors and prints the config's warning, if any, as one
// line on stderr: the clip package returns warnings, commands print them.
func openModel(dir string, stderr io.Writer) (*clip.Model, error) {
	m, err := loadModel(dir)
	if err != nil {
		return nil, err
	}
	warnNotes(stderr, m.Notes)
	return m, nil
}

// warnNotes prints the one-line warning of notes, if any.
func warnNotes(stderr io.Writer, notes clip.ConfigNotes) {
	if w := notes.Warning(); w != "" && stderr != nil {
		fmt.Fprintln(stderr, w)
	}
}
