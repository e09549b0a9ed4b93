// Package progress reports the progress of a long loop: on a terminal, one
// redrawn line with a bar, the rate and the ETA; anywhere else (a file, a
// pipe, a Slurm or CI log), a plain timestamped line every few seconds, so
// no carriage-return frames end up in logs.
//
// A Meter with a nil writer does nothing, so callers can keep an optional
// io.Writer and always call the Meter's methods.
package progress

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// Mode is how a Meter writes.
type Mode int

const (
	// Auto: Bar when the writer is a terminal, Lines otherwise.
	Auto Mode = iota
	// Bar redraws one line ("\r") with a bar, rate and ETA.
	Bar
	// Lines prints a timestamped line at most every Options.Every.
	Lines
)

// String is the mode's name.
func (m Mode) String() string {
	switch m {
	case Auto:
		return "auto"
	case Bar:
		return "bar"
	case Lines:
		return "lines"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode parses "auto", "bar" or "lines".
func ParseMode(s string) (Mode, error) {
	for _, m := range []Mode{Auto, Bar, Lines} {
		if s == m.String() {
			return m, nil
		}
	}
	return Auto, fmt.Errorf("progress: unknown mode %q (want auto, bar or lines)", s)
}

// Default intervals between two outputs.
const (
	DefaultEvery    = 10 * time.Second
	DefaultBarEvery = 200 * time.Millisecond
)

// Options configure a Meter. The zero value is usable.
type Options struct {
	Mode Mode
	// Every is the minimum time between two lines in Lines mode (default
	// DefaultEvery); bars are redrawn at most every DefaultBarEvery.
	Every time.Duration
	// Done is the count already done when the meter starts (a resumed run):
	// the rate and ETA count only what this process does.
	Done int
	// Unit follows the rate ("items/s"; default "/s"), Scale multiplies it
	// (items per counted step; default 1).
	Unit  string
	Scale float64
	// Final prints the last status even when the loop ended before the
	// first line was due (otherwise a short loop says nothing).
	Final bool
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Meter reports progress towards a total. Its methods are safe for
// concurrent use and do nothing on a nil *Meter or a nil writer.
type Meter struct {
	w     io.Writer
	label string
	total int
	o     Options

	mu          sync.Mutex
	done        int
	note        string
	start, last time.Time
	shown       bool // something was written
	drawn       bool // a bar frame is on the current line
}

// New returns a meter of label ("step", "embedding images", ...) towards
// total on w.
func New(w io.Writer, label string, total int, o Options) *Meter {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Mode == Auto {
		o.Mode = Lines
		if IsTerminal(w) {
			o.Mode = Bar
		}
	}
	if o.Every <= 0 {
		o.Every = DefaultEvery
		if o.Mode == Bar {
			o.Every = DefaultBarEvery
		}
	}
	if o.Unit == "" {
		o.Unit = "/s"
	}
	if o.Scale == 0 {
		o.Scale = 1
	}
	now := o.Now()
	return &Meter{w: w, label: label, total: total, o: o, done: o.Done, start: now, last: now}
}

// IsTerminal reports whether w is a terminal (and TERM is not "dumb").
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd())) && os.Getenv("TERM") != "dumb"
}

// Mode is the meter's resolved mode (Bar or Lines).
func (m *Meter) Mode() Mode { return m.o.Mode }

// Add counts n more items done; note (may be "") describes the latest.
func (m *Meter) Add(n int, note string) {
	if m == nil || m.w == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.update(m.done+n, note)
}

// Set sets the count done (for loops that know it); note as for Add.
func (m *Meter) Set(done int, note string) {
	if m == nil || m.w == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.update(max(done, m.done), note)
}

func (m *Meter) update(done int, note string) {
	m.done, m.note = done, note
	now := m.o.Now()
	if now.Sub(m.last) < m.o.Every || done >= m.total {
		return
	}
	m.last = now
	m.write(now)
}

// Logf prints a line of its own (a validation result, a warning) without
// breaking the bar: the bar is cleared, the line printed and the bar drawn
// again on the next update. In Lines mode the line is timestamped.
func (m *Meter) Logf(format string, a ...any) {
	if m == nil || m.w == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	line := strings.TrimSuffix(fmt.Sprintf(format, a...), "\n")
	if m.o.Mode == Bar {
		if m.drawn {
			fmt.Fprint(m.w, "\r\x1b[K")
			m.drawn = false
		}
		fmt.Fprintln(m.w, line)
		return
	}
	fmt.Fprintf(m.w, "%s %s\n", m.stamp(m.o.Now()), line)
}

// Print prints line (a log line of its own, such as another loop's) as it
// is, without a timestamp, above the bar in Bar mode.
func (m *Meter) Print(line string) {
	if m == nil || m.w == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.drawn {
		fmt.Fprint(m.w, "\r\x1b[K")
		m.drawn = false
	}
	fmt.Fprintln(m.w, strings.TrimSuffix(line, "\n"))
}

// Writer is an io.Writer whose writes are printed with Print, one line at
// a time (partial lines wait for their newline).
func (m *Meter) Writer() io.Writer { return &lineWriter{m: m} }

type lineWriter struct {
	m   *Meter
	buf []byte
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		w.m.Print(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}

// Finish writes the final status, ends the bar's line, and then summary,
// if not "", as a line of its own; a loop that ended before anything was
// shown says nothing, unless Options.Final is set.
func (m *Meter) Finish(summary string) {
	if m == nil || m.w == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.o.Now()
	if !m.shown && !m.o.Final {
		return
	}
	m.write(now)
	if m.drawn {
		fmt.Fprintln(m.w)
		m.drawn = false
	}
	if summary != "" {
		if m.o.Mode == Lines {
			fmt.Fprintf(m.w, "%s %s\n", m.stamp(now), summary)
		} else {
			fmt.Fprintln(m.w, summary)
		}
	}
}

// Elapsed is the time since the meter started.
func (m *Meter) Elapsed() time.Duration {
	if m == nil {
		return 0
	}
	return m.o.Now().Sub(m.start)
}

func (m *Meter) stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// write draws the status: a frame in Bar mode, a line in Lines mode.
func (m *Meter) write(now time.Time) {
	m.shown = true
	el := now.Sub(m.start)
	n := m.done - m.o.Done
	rate, eta := 0.0, "?"
	if s := el.Seconds(); s > 0 && n > 0 {
		rate = float64(n) / s
		eta = fmtDuration(time.Duration(float64(max(m.total-m.done, 0)) / rate * float64(time.Second)))
	}
	pct := 100.0
	if m.total > 0 {
		pct = 100 * float64(m.done) / float64(m.total)
	}
	note := ""
	if m.note != "" {
		note = "  " + m.note
	}
	sep := " "
	if strings.HasPrefix(m.o.Unit, "/") {
		sep = ""
	}
	status := fmt.Sprintf("%s %d/%d (%.0f%%)  %s%s%s  elapsed %s  ETA %s%s", m.label, m.done, m.total, pct,
		fmtRate(rate*m.o.Scale), sep, m.o.Unit, fmtDuration(el), eta, note)
	if m.o.Mode == Bar {
		fmt.Fprintf(m.w, "\r%s %s\x1b[K", bar(m.done, m.total, 24), status)
		m.drawn = true
		return
	}
	fmt.Fprintf(m.w, "%s %s\n", m.stamp(now), status)
}

// bar is "[#####-----]" of width cells.
func bar(done, total, width int) string {
	fill := width
	if total > 0 {
		fill = min(width, width*done/total)
	}
	return "[" + strings.Repeat("#", fill) + strings.Repeat("-", width-fill) + "]"
}

func fmtRate(r float64) string {
	switch {
	case r >= 100:
		return fmt.Sprintf("%.0f", r)
	case r >= 10:
		return fmt.Sprintf("%.1f", r)
	default:
		return fmt.Sprintf("%.2f", r)
	}
}

// fmtDuration rounds d to a readable precision: 850ms, 12s, 3m4s, 2h5m.
func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	default:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	}
}
