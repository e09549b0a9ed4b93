package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// splitPattern is CLIP's pre-tokenisation pattern. split implements it by
// hand (leftmost-first alternation, as Python's regex module and Go's regexp
// both do); the tests check the two against each other.
const splitPattern = `(?i)<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`

const (
	sotText   = "<|startoftext|>"
	eotText   = "<|endoftext|>"
	endOfWord = "</w>"
)

func isLetter(r rune) bool {
	if r < 0x80 {
		return ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z')
	}
	return unicode.IsLetter(r)
}

func isNumber(r rune) bool {
	if r < 0x80 {
		return '0' <= r && r <= '9'
	}
	return unicode.IsNumber(r)
}

// foldPrefix returns the length of the prefix of s that matches lit (ASCII lower-case) ignoring case
// the way the pattern's (?i) does: Unicode simple case folding, under which
// 's' also matches U+017F (long s) and 'k' matches U+212A (Kelvin sign).
func foldPrefix(s, lit string) int {
	n := 0
	for _, want := range lit {
		if n >= len(s) {
			return 0
		}
		r, size := utf8.DecodeRuneInString(s[n:])
		if r != want && !foldsTo(r, want) {
			return 0
		}
		n += size
	}
	return n
}

func foldsTo(r, want rune) bool {
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f == want {
			return true
		}
	}
	return false
}

// split calls emit with each piece of s that CLIP's pattern matches, in
// order; whitespace between pieces is dropped.
func split(s string, emit func(piece string)) {
	for i := 0; i < len(s); {
		c := s[i]
		// Fast ASCII paths.
		if c < 0x80 {
			switch {
			case c == ' ' || ('\t' <= c && c <= '\r'):
				i++
				continue
			case ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z'):
				j := i + 1
				for j < len(s) {
					if d := s[j]; d < 0x80 {
						if !(('a' <= d && d <= 'z') || ('A' <= d && d <= 'Z')) {
							break
						}
						j++
						continue
					}
					r, size := utf8.DecodeRuneInString(s[j:])
					if !isLetter(r) {
						break
					}
					j += size
				}
				emit(s[i:j])
				i = j
				continue
			case '0' <= c && c <= '9':
				emit(s[i : i+1])
				i++
				continue
			case c == '<':
				if n := foldPrefix(s[i:], sotText); n > 0 {
					emit(s[i : i+n])
					i += n
					continue
				}
				if n := foldPrefix(s[i:], eotText); n > 0 {
					emit(s[i : i+n])
					i += n
					continue
				}
			case c == '\'':
				if n := contraction(s[i+1:]); n > 0 {
					emit(s[i : i+1+n])
					i += 1 + n
					continue
				}
			}
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case isRegexSpace(r):
			i += size
		case isLetter(r):
			j := i + size
			for j < len(s) {
				r, size := utf8.DecodeRuneInString(s[j:])
				if !isLetter(r) {
					break
				}
				j += size
			}
			emit(s[i:j])
			i = j
		case isNumber(r):
			emit(s[i : i+size])
			i += size
		default:
			// A run of characters that are neither space, letter nor number.
			j := i + size
			for j < len(s) {
				r, size := utf8.DecodeRuneInString(s[j:])
				if isRegexSpace(r) || isLetter(r) || isNumber(r) {
					break
				}
				j += size
			}
			emit(s[i:j])
			i = j
		}
	}
}

// contraction returns the length of the contraction suffix ('s 't 're 've
// 'm 'll 'd, case-insensitively) that s starts with, or 0.
func contraction(s string) int {
	for _, suf := range [...]string{"s", "t", "re", "ve", "m", "ll", "d"} {
		if n := foldPrefix(s, suf); n > 0 {
			return n
		}
	}
	return 0
}

// splitAll returns the pieces of s (for tests and Train).
func splitAll(s string) []string {
	var out []string
	split(s, func(p string) { out = append(out, p) })
	return out
}
