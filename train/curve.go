package train

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"

	"github.com/mopeclip/mopeclip/internal/atomicfile"
)

// Row is one row of a training curve: column name → value. Every row has
// "step"; training rows have "loss", "lr", "grad_norm" (and the step
// function's scalars), validation rows "val_*" metrics.
type Row map[string]float64

// Curve is a training curve, in step order.
type Curve struct {
	Rows []Row
}

// Add appends a row.
func (c *Curve) Add(r Row) { c.Rows = append(c.Rows, r) }

// Until returns the rows with step ≤ step.
func (c *Curve) Until(step int) *Curve {
	out := &Curve{}
	for _, r := range c.Rows {
		if r["step"] <= float64(step) {
			out.Rows = append(out.Rows, r)
		}
	}
	return out
}

// Columns returns "step" followed by the other columns, sorted.
func (c *Curve) Columns() []string {
	set := map[string]bool{}
	for _, r := range c.Rows {
		for k := range r {
			set[k] = true
		}
	}
	delete(set, "step")
	cols := []string{"step"}
	return append(cols, sortedKeys(set)...)
}

// Series returns the (step, value) points of column col.
func (c *Curve) Series(col string) (x, y []float64) {
	for _, r := range c.Rows {
		if v, ok := r[col]; ok {
			x = append(x, r["step"])
			y = append(y, v)
		}
	}
	return x, y
}

// Write writes the curve as CSV (empty cells where a row has no value),
// atomically.
func (c *Curve) Write(path string) error {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	cols := c.Columns()
	w.Write(cols)
	for _, r := range c.Rows {
		rec := make([]string, len(cols))
		for i, k := range cols {
			if v, ok := r[k]; ok {
				rec[i] = strconv.FormatFloat(v, 'g', -1, 64)
			}
		}
		w.Write(rec)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b.Bytes())
}

// ReadCurve reads a curve written by Write.
func ReadCurve(path string) (*Curve, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c := &Curve{}
	if len(recs) == 0 {
		return c, nil
	}
	cols := recs[0]
	if !slices.Contains(cols, "step") {
		return nil, fmt.Errorf("%s: no step column", path)
	}
	for _, rec := range recs[1:] {
		r := Row{}
		for i, s := range rec {
			if s == "" || i >= len(cols) {
				continue
			}
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			r[cols[i]] = v
		}
		c.Rows = append(c.Rows, r)
	}
	return c, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

var _ = math.NaN
