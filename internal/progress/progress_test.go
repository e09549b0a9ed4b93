package progress

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a fake clock advanced by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{time.Date(2026, 12, 6, 1, 2, 3, 0, time.UTC)} }
func lines(s string) []string            { return strings.Split(strings.TrimSuffix(s, "\n"), "\n") }
func run(m *Meter, c *clock, steps int, d time.Duration, note string) {
	for range steps {
		c.advance(d)
		m.Add(1, note)
	}
}

// TestLines: in Lines mode the meter prints one timestamped line at most
// every Every, no carriage returns, the rate and ETA of this process only
// (a resumed count is not a speed), then the final status and summary.
func TestLines(t *testing.T) {
	c := newClock()
	var b bytes.Buffer
	m := New(&b, "step", 100, Options{Mode: Lines, Every: 10 * time.Second, Done: 40, Unit: "items/s", Scale: 32, Now: c.now})
	run(m, c, 60, time.Second, "loss 1.5")
	m.Logf("step 100 validation: r1 %.1f\n", 12.5)
	m.Finish("done")
	want := []string{
		"2026-12-06T01:02:13Z step 50/100 (50%)  32.0 items/s  elapsed 10s  ETA 50s  loss 1.5",
		"2026-12-06T01:02:23Z step 60/100 (60%)  32.0 items/s  elapsed 20s  ETA 40s  loss 1.5",
		"2026-12-06T01:02:33Z step 70/100 (70%)  32.0 items/s  elapsed 30s  ETA 30s  loss 1.5",
		"2026-12-06T01:02:43Z step 80/100 (80%)  32.0 items/s  elapsed 40s  ETA 20s  loss 1.5",
		"2026-12-06T01:02:53Z step 90/100 (90%)  32.0 items/s  elapsed 50s  ETA 10s  loss 1.5",
		"2026-12-06T01:03:03Z step 100 validation: r1 12.5",
		"2026-12-06T01:03:03Z step 100/100 (100%)  32.0 items/s  elapsed 1m0s  ETA 0s  loss 1.5",
		"2026-12-06T01:03:03Z done",
	}
	got := lines(b.String())
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if strings.ContainsRune(b.String(), '\r') {
		t.Errorf("carriage return in lines mode")
	}
}

// TestBar: on a terminal the meter redraws one line with a bar, at most
// every DefaultBarEvery; Logf clears the bar first; Finish ends the line.
func TestBar(t *testing.T) {
	c := newClock()
	var b bytes.Buffer
	m := New(&b, "mope", 4, Options{Mode: Bar, Now: c.now})
	c.advance(100 * time.Millisecond)
	m.Add(1, "vision/L0/head3") // too soon: nothing
	if b.Len() != 0 {
		t.Fatalf("drew %q before %v", b.String(), DefaultBarEvery)
	}
	c.advance(time.Second)
	m.Add(1, "vision/L0/head4")
	frame := "\r[############------------] mope 2/4 (50%)  1.82/s  elapsed 1s  ETA 1s  vision/L0/head4\x1b[K"
	if b.String() != frame {
		t.Errorf("frame %q, want %q", b.String(), frame)
	}
	m.Logf("a warning")
	if !strings.HasSuffix(b.String(), "\r\x1b[Ka warning\n") {
		t.Errorf("Logf did not clear the bar: %q", b.String())
	}
	c.advance(time.Second)
	m.Add(0, "x")
	fmt.Fprint(m.Writer(), "row 1: step 3/")
	if strings.HasSuffix(b.String(), "step 3/") {
		t.Errorf("a partial line was printed: %q", b.String())
	}
	w := m.Writer()
	fmt.Fprint(w, "row 1: step 3/")
	fmt.Fprint(w, "4\nrow 2: done\n")
	if !strings.HasSuffix(b.String(), "x\x1b[K\r\x1b[Krow 1: step 3/4\nrow 2: done\n") {
		t.Errorf("Writer: %q", b.String())
	}
	run(m, c, 2, time.Second, "text/L1/ffn")
	m.Finish("mope: 4 modules")
	if !strings.HasSuffix(b.String(), "ETA 0s  text/L1/ffn\x1b[K\nmope: 4 modules\n") {
		t.Errorf("finish: %q", b.String())
	}
	if strings.Contains(b.String(), "2026-") {
		t.Errorf("timestamp in bar mode: %q", b.String())
	}
}

// TestQuiet: a loop shorter than Every says nothing unless Final is set;
// a nil meter and a meter without a writer do nothing.
func TestQuiet(t *testing.T) {
	for _, final := range []bool{false, true} {
		c := newClock()
		var b bytes.Buffer
		m := New(&b, "embedding images", 10, Options{Mode: Lines, Final: final, Now: c.now})
		run(m, c, 10, 100*time.Millisecond, "")
		m.Finish("")
		if got := b.String(); (got != "") != final {
			t.Errorf("final %v: %q", final, got)
		}
	}
	var nilMeter *Meter
	nilMeter.Add(1, "")
	nilMeter.Set(1, "")
	nilMeter.Logf("x")
	nilMeter.Finish("x")
	m := New(nil, "x", 1, Options{})
	m.Add(1, "")
	m.Finish("x")
}

// TestAutoMode: a file or a buffer is not a terminal, so Auto means Lines.
func TestAutoMode(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, w := range []any{f, &bytes.Buffer{}} {
		m := New(w.(interface{ Write([]byte) (int, error) }), "x", 1, Options{})
		if m.Mode() != Lines || IsTerminal(m.w) {
			t.Errorf("%T: mode %v", w, m.Mode())
		}
	}
	for _, s := range []string{"auto", "bar", "lines"} {
		if m, err := ParseMode(s); err != nil || m.String() != s {
			t.Errorf("ParseMode(%q) = %v, %v", s, m, err)
		}
	}
	if _, err := ParseMode("fancy"); err == nil {
		t.Errorf("ParseMode accepted fancy")
	}
}

// TestConcurrent: Add from several goroutines counts every item (run with
// -race).
func TestConcurrent(t *testing.T) {
	var b bytes.Buffer
	m := New(&b, "x", 800, Options{Mode: Lines, Every: time.Nanosecond})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				m.Add(1, "")
			}
		})
	}
	wg.Wait()
	m.Finish("")
	if !strings.Contains(b.String(), "x 800/800 (100%)") {
		t.Errorf("last line: %q", lines(b.String())[len(lines(b.String()))-1])
	}
}

func TestFmtDuration(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{{850 * time.Millisecond, "850ms"}, {12400 * time.Millisecond, "12s"}, {184 * time.Second, "3m4s"}, {2*time.Hour + 5*time.Minute + 20*time.Second, "2h5m"}} {
		if got := fmtDuration(c.d); got != c.want {
			t.Errorf("%v: %q, want %q", c.d, got, c.want)
		}
	}
}
