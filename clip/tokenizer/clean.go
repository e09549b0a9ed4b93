package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Clean returns text as CLIP's tokenizer sees it before splitting: the ftfy
// subset of fixText, Python's html.unescape applied twice, surrounding
// whitespace trimmed, every run of Unicode whitespace collapsed to one space,
// and Python's str.lower (full lower-casing with final sigma). Invalid UTF-8
// in text is first replaced by U+FFFD.
func Clean(text string) string {
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	text = fixText(text)
	text = pyHTMLUnescape(pyHTMLUnescape(text))
	text = collapseWhitespace(text)
	return pyLower(text)
}

func decodeRune(s string) (rune, int) { return utf8.DecodeRuneInString(s) }

// isRegexSpace is \s of Python's regex module: the Unicode White_Space
// property.
func isRegexSpace(r rune) bool {
	if r < 0x80 {
		return r == ' ' || ('\t' <= r && r <= '\r')
	}
	return unicode.Is(unicode.White_Space, r)
}

// isPySpace is Python's str.isspace (what str.strip removes): White_Space
// plus the information separators U+001C..U+001F.
func isPySpace(r rune) bool { return isRegexSpace(r) || (0x1C <= r && r <= 0x1F) }

// collapseWhitespace is str.strip, then regex.sub(r'\s+', ' '), then strip.
func collapseWhitespace(s string) string {
	s = strings.TrimFunc(s, isPySpace)
	// Fast path: only single ASCII spaces between words.
	clean := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 || (c <= ' ' && (c != ' ' || s[i+1] == ' ')) || (0x1C <= c && c <= 0x1F) {
			// s[i+1] exists: s is trimmed, so it does not end with a space.
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	inSpace := false
	for _, r := range s {
		if isRegexSpace(r) {
			inSpace = true
			continue
		}
		if inSpace {
			b.WriteByte(' ')
			inSpace = false
		}
		b.WriteRune(r)
	}
	if inSpace {
		b.WriteByte(' ')
	}
	return strings.TrimFunc(b.String(), isPySpace)
}

// pyLower is Python's str.lower: the simple lower-case mapping, except that
// U+0130 becomes "i\u0307" and capital sigma becomes final sigma at the end
// of a word (Unicode's Final_Sigma context).
func pyLower(s string) string {
	ascii := true
	upper := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			ascii = false
			break
		}
		if 'A' <= c && c <= 'Z' {
			upper = true
		}
	}
	if ascii {
		if !upper {
			return s
		}
		b := []byte(s)
		for i, c := range b {
			if 'A' <= c && c <= 'Z' {
				b[i] = c + 'a' - 'A'
			}
		}
		return string(b)
	}
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range s {
		switch r {
		case 0x130:
			b.WriteString("i\u0307")
		case 0x3A3:
			if finalSigma(s, i) {
				b.WriteRune(0x3C2)
			} else {
				b.WriteRune(0x3C3)
			}
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// finalSigma reports whether the capital sigma at byte i of s is preceded by
// a cased letter and not followed by one, skipping case-ignorable characters
// on both sides.
func finalSigma(s string, i int) bool {
	before := false
	for j := i; j > 0; {
		r, size := utf8.DecodeLastRuneInString(s[:j])
		j -= size
		if !isCaseIgnorable(r) {
			before = isCased(r)
			break
		}
	}
	if !before {
		return false
	}
	for _, r := range s[i+2:] { // U+03A3 is two bytes
		if !isCaseIgnorable(r) {
			return !isCased(r)
		}
	}
	return true
}

// isCased is Unicode's Cased property: Lowercase, Uppercase or Lt.
func isCased(r rune) bool {
	return unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r) ||
		unicode.Is(unicode.Other_Lowercase, r) || unicode.Is(unicode.Other_Uppercase, r)
}

// isCaseIgnorable is Unicode's Case_Ignorable property: Mn, Me, Cf, Lm, Sk,
// and the Word_Break classes MidLetter, MidNumLet and Single_Quote.
func isCaseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', 0xB7, 0x387, 0x55F, 0x5F4, 0x2018, 0x2019, 0x2024, 0x2027,
		0xFE13, 0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A:
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}
