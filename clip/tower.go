package clip

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Tower names one of a CLIP model's two encoders.
type Tower string

// The towers. Their names are the spelling used by every command
// (--tower vision|text|both) and in score files.
const (
	VisionTower Tower = "vision"
	TextTower   Tower = "text"
)

// AllTowers lists the towers in their canonical order (vision, text).
var AllTowers = []Tower{VisionTower, TextTower}

// TowerAliases are accepted spellings kept for one release (mope bench's
// old --tower image); commands warn when they are used.
var TowerAliases = map[string]Tower{"image": VisionTower}

// ParseTower parses "vision" or "text" (or an alias in TowerAliases).
func ParseTower(s string) (Tower, error) {
	switch t := Tower(strings.TrimSpace(s)); t {
	case VisionTower, TextTower:
		return t, nil
	}
	if t, ok := TowerAliases[strings.TrimSpace(s)]; ok {
		return t, nil
	}
	return "", fmt.Errorf("unknown tower %q (want vision or text)", s)
}

// String returns the tower's name.
func (t Tower) String() string { return string(t) }

// Set parses s into t (flag.Value).
func (t *Tower) Set(s string) error {
	v, err := ParseTower(s)
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// TowerSet is a selection of towers: vision, text or both.
type TowerSet uint8

// Tower selections.
const (
	VisionOnly TowerSet = 1 << iota
	TextOnly
	BothTowers = VisionOnly | TextOnly
)

// ParseTowerSet parses "vision", "text", "both" or a comma list of them
// (aliases in TowerAliases accepted). The empty string is an error.
func ParseTowerSet(s string) (TowerSet, error) {
	var set TowerSet
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "both" {
			set |= BothTowers
			continue
		}
		t, err := ParseTower(f)
		if err != nil {
			return 0, fmt.Errorf("unknown tower %q (want vision, text or both)", f)
		}
		set |= t.set()
	}
	return set, nil
}

func (t Tower) set() TowerSet {
	switch t {
	case VisionTower:
		return VisionOnly
	case TextTower:
		return TextOnly
	}
	return 0
}

// TowerSetOf returns the selection holding towers.
func TowerSetOf(towers ...Tower) TowerSet {
	var s TowerSet
	for _, t := range towers {
		s |= t.set()
	}
	return s
}

// Has reports whether t is selected.
func (s TowerSet) Has(t Tower) bool { return s&t.set() != 0 }

// Towers lists the selected towers in canonical order.
func (s TowerSet) Towers() []Tower {
	var out []Tower
	for _, t := range AllTowers {
		if s.Has(t) {
			out = append(out, t)
		}
	}
	return out
}

// Names lists the selected towers' names in canonical order.
func (s TowerSet) Names() []string {
	var out []string
	for _, t := range s.Towers() {
		out = append(out, string(t))
	}
	return out
}

// String returns "vision", "text", "both" or "" (nothing selected).
func (s TowerSet) String() string {
	switch s {
	case BothTowers:
		return "both"
	case VisionOnly:
		return string(VisionTower)
	case TextOnly:
		return string(TextTower)
	}
	return ""
}

// Set parses v into s (flag.Value).
func (s *TowerSet) Set(v string) error {
	p, err := ParseTowerSet(v)
	if err != nil {
		return err
	}
	*s = p
	return nil
}

// MarshalJSON writes the selection as the list of its towers' names in
// canonical order (["vision","text"]), the spelling of score files.
func (s TowerSet) MarshalJSON() ([]byte, error) {
	names := s.Names()
	if names == nil {
		names = []string{}
	}
	return json.Marshal(names)
}

// UnmarshalJSON reads a list of tower names (aliases accepted), or null
// (nothing selected).
func (s *TowerSet) UnmarshalJSON(b []byte) error {
	var names []string
	if err := json.Unmarshal(b, &names); err != nil {
		return fmt.Errorf("towers: want a list of tower names: %w", err)
	}
	var set TowerSet
	for _, n := range names {
		t, err := ParseTower(n)
		if err != nil {
			return err
		}
		set |= t.set()
	}
	*s = set
	return nil
}
