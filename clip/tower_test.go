package clip

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseTowerSet(t *testing.T) {
	for _, c := range []struct {
		in   string
		want TowerSet
		ok   bool
		str  string
	}{
		{"vision", VisionOnly, true, "vision"},
		{"text", TextOnly, true, "text"},
		{"both", BothTowers, true, "both"},
		{"vision,text", BothTowers, true, "both"},
		{" text , vision ", BothTowers, true, "both"},
		{"image", VisionOnly, true, "vision"},
		{"image,text", BothTowers, true, "both"},
		{"", 0, false, ""},
		{"audio", 0, false, ""},
		{"vision,", 0, false, ""},
	} {
		got, err := ParseTowerSet(c.in)
		if (err == nil) != c.ok || got != c.want || got.String() != c.str {
			t.Errorf("ParseTowerSet(%q) = %v (%q), %v; want %v (%q), ok %v", c.in, got, got.String(), err, c.want, c.str, c.ok)
		}
		if c.ok {
			back, err := ParseTowerSet(got.String())
			if err != nil || back != got {
				t.Errorf("round trip of %q: %v, %v", c.in, back, err)
			}
		}
	}
	if got := BothTowers.Names(); !slices.Equal(got, []string{"vision", "text"}) {
		t.Errorf("Names = %v", got)
	}
	if !TowerSetOf(TextTower).Has(TextTower) || TowerSetOf(TextTower).Has(VisionTower) {
		t.Error("TowerSetOf/Has")
	}
}

func TestParseTower(t *testing.T) {
	for in, want := range map[string]Tower{"vision": VisionTower, "text": TextTower, "image": VisionTower} {
		var got Tower
		if err := got.Set(in); err != nil || got != want {
			t.Errorf("Set(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "both", "Vision", "img"} {
		if _, err := ParseTower(bad); err == nil {
			t.Errorf("ParseTower(%q) accepted", bad)
		}
	}
}

// TestTowerSetJSON checks the selection's JSON spelling (a list of names
// in canonical order) and that bad lists are errors naming the tower.
func TestTowerSetJSON(t *testing.T) {
	for _, c := range []struct {
		in   string
		want TowerSet
		out  string
	}{
		{`["vision","text"]`, BothTowers, `["vision","text"]`},
		{`["text","vision"]`, BothTowers, `["vision","text"]`},
		{`["text"]`, TextOnly, `["text"]`},
		{`["image"]`, VisionOnly, `["vision"]`},
		{`[]`, 0, `[]`},
		{`null`, 0, `[]`},
	} {
		var s TowerSet
		require.NoError(t, s.UnmarshalJSON([]byte(c.in)), c.in)
		require.Equal(t, c.want, s, c.in)
		b, err := s.MarshalJSON()
		require.NoError(t, err)
		require.Equal(t, c.out, string(b), c.in)
	}
	for _, bad := range []string{`["audio"]`, `"both"`, `3`} {
		var s TowerSet
		require.Error(t, s.UnmarshalJSON([]byte(bad)), bad)
	}
}
