package shapes

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The caption parser below reads a caption back into claims about the scene
// and checks each against the ground truth. It knows the vocabulary (words
// and synonyms) but not the templates, so it checks meaning, not phrasing.

type mention struct {
	count        int // 1 for a/an
	single       bool
	shape        Shape
	color        Color
	size         Size
	hasC, hasS   bool
	start, after int // token span
}

func (m mention) matches(o Object) bool {
	return o.Shape == m.shape && (!m.hasC || o.Color == m.color) && (!m.hasS || o.Size == m.size)
}

func (m mention) String() string {
	s := m.shape.String()
	if m.hasC {
		s = m.color.String() + " " + s
	}
	if m.hasS {
		s = m.size.String() + " " + s
	}
	return s
}

type vocab struct {
	noun   map[string]Shape // singular and plural, multi-word nouns joined with "_"
	plural map[string]bool
	color  map[string]Color
	size   map[string]Size
	style  map[string]BackgroundStyle
	rel    map[string]Relation
	num    map[string]int

	relPhrases [][]string
}

func newVocab() *vocab {
	v := &vocab{noun: map[string]Shape{}, plural: map[string]bool{}, color: map[string]Color{},
		size: map[string]Size{}, style: map[string]BackgroundStyle{}, rel: map[string]Relation{},
		num: map[string]int{"two": 2, "three": 3, "four": 4, "five": 5}}
	for _, s := range AllShapes {
		one, many := s.Synonyms()
		for i := range one {
			v.noun[strings.ReplaceAll(one[i], " ", "_")] = s
			v.noun[strings.ReplaceAll(many[i], " ", "_")] = s
			v.plural[strings.ReplaceAll(many[i], " ", "_")] = true
		}
	}
	for _, c := range AllColors {
		for _, w := range c.Synonyms() {
			v.color[w] = c
		}
	}
	for _, z := range []Size{Small, Large} {
		for _, w := range z.Synonyms() {
			v.size[w] = z
		}
	}
	for st := BackgroundStyle(0); st < numStyles; st++ {
		for _, w := range st.Synonyms() {
			v.style[w] = st
		}
	}
	for r := Relation(0); r < numRelations; r++ {
		for _, w := range r.Synonyms() {
			v.rel[w] = r
		}
	}
	v.relPhrases = phrases(v.rel)
	return v
}

// tokens lower-cases, drops punctuation and joins multi-word nouns.
func tokens(c string) []string {
	c = strings.NewReplacer(",", " ", ":", " ", "plus sign", "plus_sign", "crescent moon", "crescent_moon").Replace(c)
	return strings.Fields(c)
}

// parseMention reads "[a|an [single]|two..] [size] [colour] noun" at i.
func (v *vocab) parseMention(toks []string, i int) (mention, bool) {
	m := mention{start: i}
	switch {
	case i < len(toks) && (toks[i] == "a" || toks[i] == "an"):
		m.count = 1
		i++
		if i < len(toks) && toks[i] == "single" {
			m.single = true
			i++
		}
	case i < len(toks) && v.num[toks[i]] > 0:
		m.count = v.num[toks[i]]
		i++
	default:
		return m, false
	}
	if i < len(toks) {
		if s, ok := v.size[toks[i]]; ok {
			m.size, m.hasS = s, true
			i++
		}
	}
	if i < len(toks) {
		if c, ok := v.color[toks[i]]; ok {
			m.color, m.hasC = c, true
			i++
		}
	}
	if i >= len(toks) {
		return m, false
	}
	s, ok := v.noun[toks[i]]
	if !ok || v.plural[toks[i]] != (m.count > 1) {
		return m, false
	}
	m.shape = s
	m.after = i + 1
	return m, true
}

// matchPhrase reports the longest phrase of phrases at toks[i:] and its length in words.
func matchPhrase(toks []string, i int, phrases [][]string) (string, int) {
	best, n := "", 0
	for _, w := range phrases {
		if len(w) > n && i+len(w) <= len(toks) && slices.Equal(toks[i:i+len(w)], w) {
			best, n = strings.Join(w, " "), len(w)
		}
	}
	return best, n
}

var allPositions = func() map[string]Position {
	m := map[string]Position{}
	for h := -1; h <= 1; h++ {
		for vv := -1; vv <= 1; vv++ {
			p := Position{h, vv}
			for _, s := range positionPhrases(p) {
				m[s] = p
			}
		}
	}
	return m
}()

func phrases[V any](m map[string]V) [][]string {
	var out [][]string
	for k := range m {
		out = append(out, strings.Fields(k))
	}
	return out
}

var positionWords = phrases(allPositions)

// check parses caption c and returns the first false claim, or "".
func (v *vocab) check(c string, e Example) string {
	toks := tokens(c)
	used := make([]bool, len(toks))
	objs := e.Objects
	var ms []mention
	relations, positions := 0, 0
	for i := 0; i < len(toks); i++ {
		if toks[i] == "background" {
			// "[a|an] [style] [colour] background"
			j := i - 1
			for ; j >= 0 && toks[j] != "a" && toks[j] != "an"; j-- {
			}
			if j < 0 {
				return "background without article"
			}
			for k := j + 1; k < i; k++ {
				used[k] = true
				if st, ok := v.style[toks[k]]; ok {
					if st != e.Background.Style {
						return "background style " + toks[k]
					}
				} else if col, ok := v.color[toks[k]]; ok {
					if !e.Background.Named || e.Background.Color != col {
						return "background colour " + toks[k]
					}
				} else {
					return "unknown background word " + toks[k]
				}
			}
			used[i], used[j] = true, true
			continue
		}
		if i > 0 && toks[i] == "background" {
			continue
		}
		m, ok := v.parseMention(toks, i)
		if !ok {
			continue
		}
		// A mention must not be the article of a background phrase.
		n := 0
		for _, o := range objs {
			if m.matches(o) {
				n++
			}
		}
		if n < m.count {
			return "only " + strconv.Itoa(n) + " objects match " + strconv.Itoa(m.count) + " " + m.String()
		}
		if m.single && len(objs) != 1 {
			return "'a single' with several objects"
		}
		for k := m.start; k < m.after; k++ {
			used[k] = true
		}
		ms = append(ms, m)
		i = m.after - 1
	}
	// Relations and positions follow a mention.
	for mi, m := range ms {
		if p, n := matchPhrase(toks, m.after, v.relPhrases); n > 0 && mi+1 < len(ms) && ms[mi+1].start == m.after+n {
			rel, b := v.rel[p], ms[mi+1]
			found := false
			for i, oa := range objs {
				for j, ob := range objs {
					if i != j && m.matches(oa) && b.matches(ob) && hasRelation(oa, ob, rel) {
						found = true
					}
				}
			}
			if !found {
				return "false relation: " + m.String() + " " + p + " " + b.String()
			}
			for k := m.after; k < m.after+n; k++ {
				used[k] = true
			}
			relations++
			continue
		}
		if p, n := matchPhrase(toks, m.after, positionWords); n > 0 {
			found := false
			for _, o := range objs {
				if m.matches(o) && o.Position == allPositions[p] {
					found = true
				}
			}
			if !found {
				return "false position: " + m.String() + " " + p
			}
			for k := m.after; k < m.after+n; k++ {
				used[k] = true
			}
			positions++
		}
	}
	// Scene counts: "<n> objects", "<n> shapes", "one object", "one shape".
	for i := 0; i+1 < len(toks); i++ {
		if toks[i+1] == "objects" || toks[i+1] == "shapes" || toks[i+1] == "object" || toks[i+1] == "shape" {
			n := v.num[toks[i]]
			if toks[i] == "one" {
				n = 1
			}
			if n == 0 {
				return "count word " + toks[i]
			}
			if n != len(objs) {
				return "scene count " + toks[i]
			}
			used[i] = true
		}
	}
	// Captions that are plain lists (no relation, no position) describe
	// every object, grouped exactly.
	total := 0
	for _, m := range ms {
		total += m.count
	}
	if total > len(objs) {
		return "more objects mentioned than present"
	}
	// Mentions of the same description refer to different objects.
	same := map[string]int{}
	for _, m := range ms {
		same[m.String()] += m.count
	}
	for _, m := range ms {
		n := 0
		for _, o := range objs {
			if m.matches(o) {
				n++
			}
		}
		if same[m.String()] > n {
			return "too many mentions of " + m.String()
		}
	}
	if relations == 0 && positions == 0 {
		if total != len(objs) {
			return "list does not cover the scene"
		}
		for _, m := range ms {
			n := 0
			for _, o := range objs {
				if m.matches(o) {
					n++
				}
			}
			if n != m.count {
				return "list count for " + m.String()
			}
		}
	}
	// Every vocabulary word must belong to a checked claim.
	for i, tk := range toks {
		_, isShape := v.noun[tk]
		_, isColor := v.color[tk]
		_, isSize := v.size[tk]
		_, isNum := v.num[tk]
		if !used[i] && (isShape || isColor || isSize || isNum) {
			return "unchecked word " + tk
		}
	}
	return ""
}

func TestCaptionsFaithful(t *testing.T) {
	v := newVocab()
	cfg := DefaultConfig()
	templatesSeen := map[string]bool{}
	for _, split := range []string{"train", "test"} {
		for _, e := range mustGenerate(t, cfg, split, 2000) {
			seen := map[string]bool{}
			for _, c := range e.Captions {
				if seen[c] {
					t.Errorf("%s: duplicate caption %q", e.ID, c)
				}
				seen[c] = true
				if c != strings.ToLower(c) || strings.Contains(c, "  ") {
					t.Errorf("%s: badly formatted %q", e.ID, c)
				}
				if why := v.check(c, e); why != "" {
					t.Fatalf("%s: caption %q: %s\nobjects %+v\nbackground %+v", e.ID, c, why, e.Objects, e.Background)
				}
				for _, w := range []string{"left of", "above", "below", "next to", "beside", "under", "over", "objects:", "shapes:", "background"} {
					if strings.Contains(c, w) {
						templatesSeen[w] = true
					}
				}
			}
		}
	}
	if len(templatesSeen) < 8 {
		t.Errorf("few phrasings seen: %v", templatesSeen)
	}
}

// TestCaptionParserCatchesLies makes sure the checker is not vacuous.
func TestCaptionParserCatchesLies(t *testing.T) {
	v := newVocab()
	e := Example{
		Objects: []Object{
			{Shape: Circle, Color: Red, Size: Small, X: 0.25, Y: 0.5, R: 0.1, Position: positionOf(0.25, 0.5)},
			{Shape: Square, Color: Blue, Size: Large, X: 0.75, Y: 0.5, R: 0.17, Position: positionOf(0.75, 0.5)},
		},
		Background: Background{Style: Plain, Named: true, Color: White},
	}
	for c, ok := range map[string]bool{
		"a small red circle and a large blue square":           true,
		"a red circle left of a blue square":                   true,
		"a red circle on the left":                             true,
		"two objects: a red circle and a blue square":          true,
		"a red circle and a blue square on a white background": true,
		"a blue square right of a red circle":                  true,
		"a red circle above a blue square":                     false,
		"a blue circle and a red square":                       false,
		"a large red circle and a large blue square":           false,
		"a red circle on the right":                            false,
		"three objects: a red circle and a blue square":        false,
		"a red circle":    false, // a list must cover the scene
		"two red circles": false,
		"a red circle and a blue square on a green background":   false,
		"a red circle and a blue square on a striped background": false,
		"a single red circle":                                       false,
		"a red circle and a blue square with a green star":          false,
		"a red circle to the left of a blue square and a green dot": false,
	} {
		why := v.check(c, e)
		if (why == "") != ok {
			t.Errorf("%q: accepted=%v (%s), want %v", c, why == "", why, ok)
		}
	}
}

// TestTwinCaptionsDiscriminate checks that, in a hard-negative pair, every
// caption of each image is false of the other image.
func TestTwinCaptionsDiscriminate(t *testing.T) {
	v := newVocab()
	exs := append(mustGenerate(t, DefaultConfig(), "test", 1000), mustGenerate(t, DefaultConfig(), "val", 1000)...)
	pairs := 0
	for k, e := range exs {
		if k >= 1000 {
			e.TwinOf += 1000 // val examples follow the test ones
		}
		if e.TwinOf < 0 {
			continue
		}
		pairs++
		b := exs[e.TwinOf]
		for _, pr := range [][2]Example{{e, b}, {b, e}} {
			for _, c := range pr[0].Captions {
				if v.check(c, pr[0]) != "" {
					t.Fatalf("%s: caption %q not true of its own image", pr[0].ID, c)
				}
				if v.check(c, pr[1]) == "" {
					t.Errorf("%s/%s (%s): caption %q is true of both", pr[0].ID, pr[1].ID, e.Change, c)
				}
			}
		}
	}
	if pairs < 200 {
		t.Errorf("only %d twin pairs", pairs)
	}
}
