package grid

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPlotsFromStory draws the plots of a story.json: set
// MOPECLIP_STORY_JSON to a demo's story.json to look at them
// (MOPECLIP_PLOT_OUT names the output base); without it the committed
// testdata is drawn.
func TestPlotsFromStory(t *testing.T) {
	path := os.Getenv("MOPECLIP_STORY_JSON")
	if path == "" {
		path = filepath.Join("testdata", "story-quick.json")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rows []*Row
	if err := json.Unmarshal(b, &rows); err != nil {
		t.Fatal(err)
	}
	base := os.Getenv("MOPECLIP_PLOT_OUT")
	if base == "" {
		base = filepath.Join(t.TempDir(), PlotBase)
	}
	if err := WritePlots(base, rows); err != nil {
		t.Fatal(err)
	}
	svg, err := os.ReadFile(base + ".svg")
	if err != nil {
		t.Fatal(err)
	}
	// Every method of the rows is in the legend; the log axis has decimal
	// tick labels.
	for _, want := range []string{"mope", "magnitude", "random", "scratch", "teacher&#39;s GFLOPs", "order depth-width", "0.02", "0"} {
		if !strings.Contains(string(svg), ">"+want+"<") {
			t.Errorf("%s.svg has no %q", base, want)
		}
	}
	if st, err := os.Stat(base + ".png"); err != nil || st.Size() < 1000 {
		t.Errorf("png: %v", err)
	}
}
