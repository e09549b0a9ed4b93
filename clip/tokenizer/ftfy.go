package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// This file implements the part of ftfy.fix_text (ftfy 6.x, default
// configuration) that CLIP's cleanup relies on for captions:
//
//   - the text is fixed line by line ("\n" ends a segment); once a line
//     contains '<', HTML entities are left alone in it and in every later line;
//   - each line is fixed repeatedly until nothing changes, one round being:
//     ftfy's strict HTML-entity decoding, mojibake repair (below), C1 controls
//     read as Windows-1252, Latin ligatures split, fullwidth/halfwidth forms
//     replaced, curly quotes straightened, line breaks unified, ANSI terminal
//     escapes and invisible control characters removed, NFC normalisation.
//
// Mojibake repair handles the common case: a line that is UTF-8 read as
// Latin-1 or as Windows-1252 ("cafÃ©", "donâ€™t", also twice over) is read
// again as UTF-8, with ftfy's two byte-level helpers (a space standing for a
// lost byte A0, U+FFFD standing for a lost byte). Differences from ftfy:
//
//   - ftfy first asks its "badness" heuristic whether the text looks like
//     mojibake; here a line is repaired exactly when its single-byte encoding
//     holds a complete multi-byte UTF-8 sequence and as a whole is valid
//     UTF-8. So a few strings ftfy leaves alone are repaired here ("â„¢" for
//     "™", "Â¥300"), and a space is read as byte A0 only when the line also
//     has an intact sequence ("voilÃ le travail", "Ã la carte" stay as they
//     are, ftfy gives "voilà", "à la");
//   - not tried: the other single-byte encodings ftfy knows (Windows-1250,
//     -1251, -1253, -1254, -1257, ISO-8859-2, MacRoman, CP437), the
//     "utf-8-variants" decoder (CESU-8 surrogates, Java's C0 80), and the
//     repair of mojibake mixed with correct text in one line
//     (decode_inconsistent_utf8);
//   - ftfy cuts lines longer than 1,000,000 characters into segments; here a
//     line is one segment whatever its length;
//   - Go strings cannot hold UTF-16 surrogates (fix_surrogates); invalid
//     UTF-8 input is replaced by U+FFFD before any of this.
//
// Measured against ftfy 6.3.1: on 18,000 generated caption-like strings
// (about half of them mojibake, some with entities) the cleaned text differed
// in 57, all "™"/"¥" cases as above; on 2,000 strings of random Latin-1
// letters and symbols it differed in 18%, nearly all where ftfy decodes part
// of a line (decode_inconsistent_utf8).

// fixText is the ftfy subset described above.
func fixText(s string) string {
	if plainASCII(s) {
		return s
	}
	unescape := true
	var out strings.Builder
	out.Grow(len(s))
	for len(s) > 0 {
		n := strings.IndexByte(s, '\n') + 1
		if n == 0 {
			n = len(s)
		}
		seg := s[:n]
		s = s[n:]
		if unescape && strings.IndexByte(seg, '<') >= 0 {
			unescape = false
		}
		out.WriteString(fixSegment(seg, unescape))
	}
	return out.String()
}

// plainASCII reports text that no ftfy step changes: printable ASCII, tabs,
// newlines and form feeds, and no '&'.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x7F || c == '&' || (c < 0x20 && c != '\t' && c != '\n' && c != '\f') {
			return false
		}
	}
	return true
}

// Flags of scanFlags: which fixes a text may need.
const (
	flagNonASCII = 1 << iota
	flagLead     // a character that may be a UTF-8 lead byte read as Latin-1/1252
	flagC1
	flagLigature
	flagWidth
	flagQuote
	flagBreak
	flagEscape
	flagControl
)

// scanFlags looks at s once and reports which fixes could change it.
func scanFlags(s string) int {
	f := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x80 {
			switch {
			case c == '\r':
				f |= flagBreak
			case c == 0x1B:
				f |= flagEscape | flagControl
			case c < 0x20 || c == 0x7F:
				if isRemovedControl(rune(c)) {
					f |= flagControl
				}
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		f |= flagNonASCII
		switch {
		case r <= 0x9F:
			f |= flagC1
			if r == 0x85 {
				f |= flagBreak
			}
		case r < 0x100:
			if r >= 0xC2 && r <= 0xF4 {
				f |= flagLead
			}
		case r == 0x2BC || (0x2018 <= r && r <= 0x201F):
			f |= flagQuote
		case r == 0x2028 || r == 0x2029:
			f |= flagBreak
		case r == 0x3000 || (0xFF01 <= r && r <= 0xFFEF):
			f |= flagWidth
		case isRemovedControl(r):
			f |= flagControl
		default:
			if _, ok := ligatureMap[r]; ok {
				f |= flagLigature
			}
		}
	}
	return f
}

func fixSegment(s string, unescape bool) string {
	for {
		orig := s
		if unescape && strings.IndexByte(s, '&') >= 0 {
			s = ftfyUnescapeHTML(s)
		}
		f := scanFlags(s)
		step := func(flag int, fix func(string) string) {
			if f&flag != 0 {
				if t := fix(s); t != s {
					s = t
					f = scanFlags(s)
				}
			}
		}
		step(flagLead, fixEncoding)
		step(flagC1, fixC1Controls)
		step(flagLigature, func(s string) string { return mapRunes(s, ligatureMap) })
		step(flagWidth, func(s string) string { return mapRunes(s, widthMap) })
		step(flagQuote, uncurlQuotes)
		step(flagBreak, fixLineBreaks)
		step(flagEscape, removeTerminalEscapes)
		step(flagControl, removeControlChars)
		if f&flagNonASCII != 0 {
			s = norm.NFC.String(s)
		}
		if s == orig {
			return s
		}
	}
}

var ligatureMap = map[rune]string{
	0x0132: "IJ", 0x0133: "ij", 0x0149: "\u02bcn",
	0x01F1: "DZ", 0x01F2: "Dz", 0x01F3: "dz",
	0x01C4: "D\u017d", 0x01C5: "D\u017e", 0x01C6: "d\u017e",
	0x01C7: "LJ", 0x01C8: "Lj", 0x01C9: "lj",
	0x01CA: "NJ", 0x01CB: "Nj", 0x01CC: "nj",
	0xFB00: "ff", 0xFB01: "fi", 0xFB02: "fl", 0xFB03: "ffi", 0xFB04: "ffl",
	0xFB05: "\u017ft", 0xFB06: "st",
}

// mapRunes replaces every rune that is a key of m.
func mapRunes(s string, m map[rune]string) string {
	var b *strings.Builder
	for i, r := range s {
		if r < 0x80 {
			if b != nil {
				b.WriteRune(r)
			}
			continue
		}
		v, ok := m[r]
		if ok && b == nil {
			b = new(strings.Builder)
			b.Grow(len(s))
			b.WriteString(s[:i])
		}
		switch {
		case ok:
			b.WriteString(v)
		case b != nil:
			b.WriteRune(r)
		}
	}
	if b == nil {
		return s
	}
	return b.String()
}

func uncurlQuotes(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == 0x2BC || (0x2018 <= r && r <= 0x201B):
			return '\''
		case 0x201C <= r && r <= 0x201F:
			return '"'
		}
		return r
	}, s)
}

var lineBreaks = strings.NewReplacer("\r\n", "\n", "\r", "\n", "\u2028", "\n", "\u2029", "\n", "\u0085", "\n")

func fixLineBreaks(s string) string { return lineBreaks.Replace(s) }

// removeTerminalEscapes removes ESC '[' (digit | ';')* letter, where digit is
// any Unicode decimal digit (Python's \d).
func removeTerminalEscapes(s string) string {
	i := strings.Index(s, "\x1b[")
	if i < 0 {
		return s
	}
	var b strings.Builder
	for i >= 0 {
		j := i + 2
		for j < len(s) {
			r, size := utf8.DecodeRuneInString(s[j:])
			if r != ';' && !unicode.IsDigit(r) {
				break
			}
			j += size
		}
		if j < len(s) && (('a' <= s[j] && s[j] <= 'z') || ('A' <= s[j] && s[j] <= 'Z')) {
			b.WriteString(s[:i])
			s = s[j+1:]
			i = strings.Index(s, "\x1b[")
			continue
		}
		b.WriteString(s[:i+1])
		s = s[i+1:]
		i = strings.Index(s, "\x1b[")
	}
	b.WriteString(s)
	return b.String()
}

// isRemovedControl is ftfy's set of invisible control characters to drop.
func isRemovedControl(r rune) bool {
	switch {
	case r < 0x20:
		return r <= 0x08 || r == 0x0B || r >= 0x0E
	case r < 0x80:
		return r == 0x7F
	}
	return (0x206A <= r && r <= 0x206F) || r == 0xFEFF || (0xFFF9 <= r && r <= 0xFFFC)
}

func removeControlChars(s string) string {
	found := false
	for _, r := range s {
		if isRemovedControl(r) {
			found = true
			break
		}
	}
	if !found {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isRemovedControl(r) {
			return -1
		}
		return r
	}, s)
}

// fixC1Controls reads C1 control characters (U+0080..U+009F) as the
// Windows-1252 characters of the same byte.
func fixC1Controls(s string) string {
	if !hasC1(s) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if 0x80 <= r && r <= 0x9F {
			return sloppy1252C1[r-0x80]
		}
		return r
	}, s)
}

func hasC1(s string) bool {
	// U+0080..U+009F are encoded as C2 80..C2 9F.
	for i := 0; i+1 < len(s); i++ {
		if s[i] == 0xC2 && s[i+1] >= 0x80 && s[i+1] <= 0x9F {
			return true
		}
	}
	return false
}

// sloppy1252Encode maps runes back to Windows-1252 bytes ("sloppy": the
// undefined bytes are their C1 code points, and U+FFFD stands for byte 1A).
var sloppy1252Encode = func() map[rune]byte {
	m := make(map[rune]byte, 32)
	for i, r := range sloppy1252C1 {
		m[r] = byte(0x80 + i)
	}
	return m
}()

// encodeSingleByte encodes s as Latin-1 (sloppy == false) or as sloppy
// Windows-1252. It reports false when a character has no byte, or when the
// text contains U+001A (which the sloppy codec reserves).
func encodeSingleByte(s string, sloppy bool) ([]byte, bool) {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		switch {
		case r < 0x80:
			if sloppy && r == 0x1A {
				return nil, false
			}
			out = append(out, byte(r))
		case r >= 0xA0 && r <= 0xFF:
			out = append(out, byte(r))
		case !sloppy && r < 0xA0:
			out = append(out, byte(r))
		case sloppy && r == 0xFFFD:
			out = append(out, 0x1A)
		default:
			b, ok := sloppy1252Encode[r]
			if !sloppy || !ok {
				return nil, false
			}
			out = append(out, b)
		}
	}
	return out, true
}

// fixEncoding repeats one mojibake-repair step until the text stops changing.
func fixEncoding(s string) string {
	for {
		fixed := fixEncodingStep(s)
		if fixed == s {
			return s
		}
		s = fixed
	}
}

func fixEncodingStep(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	for _, sloppy := range []bool{false, true} {
		b, ok := encodeSingleByte(s, sloppy)
		if !ok || !hasUTF8MultiByte(b) {
			// Without one intact multi-byte sequence there is no evidence
			// of mojibake (this also keeps "PIÙ FORTE" from being read as
			// "PI\u0660FORTE" through restoreByteA0).
			continue
		}
		if hasAlteredUTF8(b) {
			b = restoreByteA0(b)
		}
		if sloppy {
			b = replaceLossySequences(b)
		}
		if utf8.Valid(b) {
			return string(b)
		}
	}
	return s
}

// hasUTF8MultiByte reports whether b holds at least one complete, valid
// multi-byte UTF-8 sequence.
func hasUTF8MultiByte(b []byte) bool {
	for i := 0; i+1 < len(b); i++ {
		if b[i] >= 0xC2 && b[i] <= 0xF4 && b[i+1]&0xC0 == 0x80 {
			if _, size := utf8.DecodeRune(b[i:]); size > 1 {
				return true
			}
		}
	}
	return false
}

func inSet(c byte, lo, hi byte) bool { return lo <= c && c <= hi }

// isAlteredCont is [\x80-\x84\x86-\x9f\xa1-\xbf]: a continuation byte that
// is neither 85 nor A0.
func isAlteredCont(c byte) bool { return inSet(c, 0x80, 0xBF) && c != 0x85 && c != 0xA0 }

// alteredUTF8At matches, at b[i:], a UTF-8 sequence in which one byte A0 was
// replaced by a space, and returns its length or 0.
func alteredUTF8At(b []byte, i int) int {
	at := func(k int) byte {
		if i+k < len(b) {
			return b[i+k]
		}
		return 0
	}
	c := b[i]
	switch {
	case (c == 0xC2 || c == 0xC3 || c == 0xC5 || c == 0xCE || c == 0xD0 || c == 0xD9) && at(1) == ' ':
		return 2
	case (c == 0xE2 || c == 0xE3) && at(1) == ' ' && isAlteredCont(at(2)):
		return 3
	case inSet(c, 0xE0, 0xE3) && isAlteredCont(at(1)) && at(2) == ' ':
		return 3
	case c == 0xF0:
		cont := func(k int) bool { return inSet(at(k), 0x80, 0xBF) }
		if (at(1) == ' ' && cont(2) && cont(3)) || (cont(1) && at(2) == ' ' && cont(3)) ||
			(cont(1) && cont(2) && at(3) == ' ') {
			return 4
		}
	}
	return 0
}

func hasAlteredUTF8(b []byte) bool {
	for i := range b {
		if alteredUTF8At(b, i) > 0 {
			return true
		}
	}
	return false
}

// restoreByteA0 puts back byte A0 where a space replaced it inside what
// would otherwise be UTF-8; a lone "Ã " word becomes "à " (the space kept),
// except before the Portuguese "às", "àquele", "àquela", "àquilo".
func restoreByteA0(b []byte) []byte {
	var out []byte
	for i := 0; i < len(b); i++ {
		if b[i] == 0xC3 && i+1 < len(b) && b[i+1] == ' ' {
			rest := b[i+2:]
			hasPrefix := func(p string) bool { return len(rest) >= len(p) && string(rest[:len(p)]) == p }
			if !(hasPrefix(" ") || hasPrefix("quele") || hasPrefix("quela") || hasPrefix("quilo") || hasPrefix("s ")) {
				out = append(out, 0xC3, 0xA0, ' ')
				i++
				continue
			}
		}
		out = append(out, b[i])
	}
	b = out
	out = make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		if n := alteredUTF8At(b, i); n > 0 {
			for _, c := range b[i : i+n] {
				if c == ' ' {
					c = 0xA0
				}
				out = append(out, c)
			}
			i += n
			continue
		}
		out = append(out, b[i])
		i++
	}
	return out
}

// lossyUTF8At matches, at b[i:], a UTF-8 sequence some of whose bytes were
// lost (byte 1A, or '?' in some positions), or a lone 1A; it returns the
// match length or 0.
func lossyUTF8At(b []byte, i int) int {
	at := func(k int) int {
		if i+k < len(b) {
			return int(b[i+k])
		}
		return -1
	}
	lost := func(k int) bool { return at(k) == 0x1A || at(k) == '?' }
	contOrSub := func(k int) bool { return at(k) == 0x1A || (at(k) >= 0x80 && at(k) <= 0xBF) }
	contOrLost := func(k int) bool { return lost(k) || (at(k) >= 0x80 && at(k) <= 0xBF) }
	c := at(0)
	switch {
	case c >= 0xC2 && c <= 0xDF && at(1) == 0x1A:
		return 2
	case (c == 0xC2 || c == 0xC3) && at(1) == '?':
		return 2
	}
	if c == 0xED && at(1) >= 0xA0 && at(1) <= 0xAF && at(3) == 0xED && at(4) >= 0xB0 && at(4) <= 0xBF {
		if (lost(2) && contOrLost(5)) || (contOrLost(2) && lost(5)) {
			return 6
		}
	}
	switch {
	case c >= 0xE0 && c <= 0xEF:
		if (lost(1) && contOrSub(2)) || (contOrSub(1) && lost(2)) {
			return 3
		}
	case c >= 0xF0 && c <= 0xF4:
		if (lost(1) && contOrSub(2) && contOrSub(3)) || (contOrSub(1) && lost(2) && contOrSub(3)) ||
			(contOrSub(1) && contOrSub(2) && lost(3)) {
			return 4
		}
	}
	if c == 0x1A {
		return 1
	}
	return 0
}

// replaceLossySequences replaces each lossy sequence by the UTF-8 of U+FFFD.
func replaceLossySequences(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		if n := lossyUTF8At(b, i); n > 0 {
			out = append(out, 0xEF, 0xBF, 0xBD)
			i += n
			continue
		}
		out = append(out, b[i])
		i++
	}
	return out
}
