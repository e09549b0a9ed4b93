package tokenizer

import "strings"

// pyHTMLUnescape decodes character references exactly as Python's
// html.unescape does (the HTML5 rules): named references with or without the
// semicolon, the longest-prefix rule for legacy names written without one,
// decimal and hexadecimal references with the standard's replacements for
// invalid numbers. One call decodes one level ("&amp;amp;" becomes "&amp;").
func pyHTMLUnescape(s string) string {
	i := strings.IndexByte(s, '&')
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i >= 0 {
		b.WriteString(s[:i])
		s = s[i:]
		repl, n := charref(s)
		if n == 0 {
			b.WriteByte('&')
			s = s[1:]
		} else {
			b.WriteString(repl)
			s = s[n:]
		}
		i = strings.IndexByte(s, '&')
	}
	b.WriteString(s)
	return b.String()
}

func isASCIIDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHexDigit(c byte) bool {
	return isASCIIDigit(c) || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func hexVal(c byte) int {
	switch {
	case c <= '9':
		return int(c - '0')
	case c >= 'a':
		return int(c-'a') + 10
	default:
		return int(c-'A') + 10
	}
}

// charref decodes the reference at the start of s (s[0] == '&'). It returns
// the replacement and the number of bytes consumed, or n == 0 when no
// reference pattern matches there (the '&' is then literal).
func charref(s string) (string, int) {
	if len(s) < 2 {
		return "", 0
	}
	if s[1] == '#' {
		// numeric: &#[0-9]+;? or &#[xX][0-9a-fA-F]+;?
		j := 2
		num := 0
		const big = 0x110000 // anything past the Unicode range behaves alike
		switch {
		case j < len(s) && (s[j] == 'x' || s[j] == 'X') && j+1 < len(s) && isHexDigit(s[j+1]):
			j++
			for j < len(s) && isHexDigit(s[j]) {
				if num < big {
					num = num*16 + hexVal(s[j])
				}
				j++
			}
		case j < len(s) && isASCIIDigit(s[j]):
			for j < len(s) && isASCIIDigit(s[j]) {
				if num < big {
					num = num*10 + int(s[j]-'0')
				}
				j++
			}
		default:
			return "", 0
		}
		if j < len(s) && s[j] == ';' {
			j++
		}
		return numericRef(num), j
	}
	// named: [^\t\n\f <&#;]{1,32};?  (32 characters, not bytes)
	j, chars := 1, 0
	for j < len(s) && chars < 32 {
		c := s[j]
		if c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<' || c == '&' || c == '#' || c == ';' {
			break
		}
		if c < 0x80 {
			j++
		} else {
			_, size := decodeRune(s[j:])
			j += size
		}
		chars++
	}
	if chars == 0 {
		return "", 0
	}
	if j < len(s) && s[j] == ';' {
		j++
	}
	name := s[1:j]
	if v, ok := html5Entities[name]; ok {
		return v, j
	}
	// Longest proper prefix (at least two characters) that is a name. Names
	// are ASCII, so only the ASCII head of the match can hold one.
	ascii := 0
	for ascii < len(name) && name[ascii] < 0x80 {
		ascii++
	}
	nchars := chars
	if name[len(name)-1] == ';' {
		nchars++
	}
	x := min(nchars-1, ascii, html5EntityMaxLen)
	for ; x >= 2; x-- {
		if v, ok := html5Entities[name[:x]]; ok {
			return v + name[x:], j
		}
	}
	return s[:j], j
}

func numericRef(num int) string {
	if v, ok := invalidCharrefs[num]; ok {
		return v
	}
	if (0xD800 <= num && num <= 0xDFFF) || num > 0x10FFFF {
		return "\uFFFD"
	}
	if invalidCodepoints[num] {
		return ""
	}
	return string(rune(num))
}

// ftfyUnescapeHTML is ftfy's conservative entity decoder: only complete
// references "&name;" / "&#n;" of at most 24 alphanumerics are decoded, named
// ones only when they are HTML5 names (or the all-caps spelling of a
// lower-case name), numeric ones only when Python's rules consume the whole
// reference.
func ftfyUnescapeHTML(s string) string {
	i := strings.IndexByte(s, '&')
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i >= 0 {
		b.WriteString(s[:i])
		s = s[i:]
		n := matchFtfyEntity(s)
		if n == 0 {
			b.WriteByte('&')
			s = s[1:]
		} else {
			b.WriteString(ftfyEntityFixup(s[:n]))
			s = s[n:]
		}
		i = strings.IndexByte(s, '&')
	}
	b.WriteString(s)
	return b.String()
}

func isASCIIAlnum(c byte) bool {
	return isASCIIDigit(c) || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

// matchFtfyEntity matches &#?[0-9A-Za-z]{1,24}; at the start of s and
// returns its length, or 0.
func matchFtfyEntity(s string) int {
	try := func(start int) int {
		j := start
		for j < len(s) && j-start < 25 && isASCIIAlnum(s[j]) {
			j++
		}
		if n := j - start; n >= 1 && n <= 24 && j < len(s) && s[j] == ';' {
			return j + 1
		}
		return 0
	}
	if len(s) > 1 && s[1] == '#' {
		return try(2) // without the '#', '#' itself is not alphanumeric
	}
	return try(1)
}

func ftfyEntityFixup(ent string) string {
	if v, ok := html5Entities[ent[1:]]; ok { // ent ends in ';'
		return v
	}
	if v, ok := upperEntities[ent]; ok {
		return v
	}
	if strings.HasPrefix(ent, "&#") {
		if u := pyHTMLUnescape(ent); !strings.Contains(u, ";") {
			return u
		}
	}
	return ent
}
