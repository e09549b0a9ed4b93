package layering

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var backticked = regexp.MustCompile("`([a-z0-9_/.]+)`")

// tableRows returns, for the first markdown table after the heading line
// that starts with heading, the packages of known named in backticks in the
// first cell of each row that names any (nil when there is no table).
func tableRows(text, heading string, known map[string]int) [][]string {
	lines := strings.Split(text, "\n")
	i := 0
	for i < len(lines) && !strings.HasPrefix(lines[i], heading) {
		i++
	}
	var rows [][]string
	inTable := false
	for i++; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if strings.HasPrefix(l, "#") {
			break
		}
		if !strings.HasPrefix(l, "|") {
			if inTable {
				break
			}
			continue
		}
		inTable = true
		// The packages are those of the first cell that names any (the
		// cells after it describe them).
		for _, cell := range strings.Split(l, "|") {
			var row []string
			for _, m := range backticked.FindAllStringSubmatch(cell, -1) {
				if p := strings.TrimSuffix(m[1], "/"); known[p] > 0 {
					row = append(row, p)
				}
			}
			if len(row) > 0 {
				rows = append(rows, row)
				break
			}
		}
	}
	return rows
}

// checkTable requires the table to name every package of Order exactly
// once, in rows that follow Order (packages within one row in any order).
func checkTable(t *testing.T, what string, rows [][]string) {
	t.Helper()
	rank := map[string]int{}
	for i, p := range Order {
		rank[p] = i + 1
	}
	seen := map[string]bool{}
	prevMax := 0
	for _, row := range rows {
		lo, hi := len(Order)+1, 0
		for _, p := range row {
			if seen[p] {
				t.Errorf("%s names %s twice", what, p)
			}
			seen[p] = true
			lo, hi = min(lo, rank[p]), max(hi, rank[p])
		}
		if lo < prevMax {
			t.Errorf("%s: row %v comes after a package layering.Order puts above %s", what, row, Order[lo-1])
		}
		prevMax = max(prevMax, hi)
	}
	for _, p := range Order {
		if !seen[p] {
			t.Errorf("%s does not place %s", what, p)
		}
	}
}

func known() map[string]int {
	k := map[string]int{}
	for i, p := range Order {
		k[p] = i + 1
	}
	return k
}

// TestArchitectureTable checks the layer table of docs/architecture.md
// against Order.
func TestArchitectureTable(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root(t), "docs", "architecture.md"))
	require.NoError(t, err)
	rows := tableRows(string(b), "## Package layers", known())
	if len(rows) < 5 {
		t.Fatalf("docs/architecture.md: no layer table under \"## Package layers\" (%d rows)", len(rows))
	}
	checkTable(t, "docs/architecture.md", rows)
}

// TestReadmeLayout checks the layout table of README.md against Order.
func TestReadmeLayout(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root(t), "README.md"))
	require.NoError(t, err)
	rows := tableRows(string(b), "## Layout", known())
	if len(rows) < 5 {
		t.Fatalf("README.md: no layout table under \"## Layout\" (%d rows)", len(rows))
	}
	checkTable(t, "README.md", rows)
}
