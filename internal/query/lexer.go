package query

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// tokKind is the kind of a lexical token.
type tokKind uint8

const (
	tEOF    tokKind = iota
	tWord           // bare word; raw text with escapes unresolved
	tString         // quoted string; raw text between the quotes
	tLParen         // (
	tRParen         // )
	tPipe           // |
	tComma          // ,
	tMinus          // - at the start of a token
)

// token is one lexical token. pos and end are byte offsets into the source;
// for tString they include the quotes.
type token struct {
	kind     tokKind
	raw      string
	pos, end int
}

// describe names the token for error messages.
func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "end of query"
	case tLParen:
		return "'('"
	case tRParen:
		return "')'"
	case tPipe:
		return "'|'"
	case tComma:
		return "','"
	case tMinus:
		return "'-'"
	case tString:
		return fmt.Sprintf("%q", clipText(t.raw))
	}
	return fmt.Sprintf("%q", clipText(t.raw))
}

// punctKind is the token kind of a one-character punctuation token.
func punctKind(r rune) tokKind {
	switch r {
	case '(':
		return tLParen
	case ')':
		return tRParen
	case '|':
		return tPipe
	}
	return tComma
}

// isDelim reports whether r ends a bare word.
func isDelim(r rune) bool {
	switch r {
	case '(', ')', '|', '"', ',':
		return true
	}
	return unicode.IsSpace(r)
}

// lex splits src into tokens. It rejects invalid UTF-8, control characters,
// unterminated strings and dangling escapes, so later stages see only
// printable text. The token count is bounded by the source length.
func lex(src string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(src) {
		r, size := utf8.DecodeRuneInString(src[i:])
		if err := checkRune(src, i, r, size); err != nil {
			return nil, err
		}
		switch {
		case unicode.IsSpace(r):
			i += size
		case r == '(' || r == ')' || r == '|' || r == ',':
			k := punctKind(r)
			toks = append(toks, token{kind: k, raw: src[i : i+1], pos: i, end: i + 1})
			i++
		case r == '-':
			toks = append(toks, token{kind: tMinus, raw: "-", pos: i, end: i + 1})
			i++
		case r == '"':
			end, err := scanString(src, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{kind: tString, raw: src[i+1 : end-1], pos: i, end: end})
			i = end
		default:
			end, err := scanWord(src, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{kind: tWord, raw: src[i:end], pos: i, end: end})
			i = end
		}
	}
	return append(toks, token{kind: tEOF, pos: len(src), end: len(src)}), nil
}

// checkRune rejects invalid UTF-8 and control characters other than the
// whitespace ones.
func checkRune(src string, i int, r rune, size int) error {
	if r == utf8.RuneError && size <= 1 {
		return errAt(src, i, "invalid UTF-8")
	}
	if unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r' {
		return errAt(src, i, "control character %U", r)
	}
	return nil
}

// scanString returns the offset just past the closing quote of the string
// starting at i.
func scanString(src string, i int) (int, error) {
	j := i + 1
	for j < len(src) {
		r, size := utf8.DecodeRuneInString(src[j:])
		if err := checkRune(src, j, r, size); err != nil {
			return 0, err
		}
		switch r {
		case '"':
			return j + 1, nil
		case '\\':
			if j+1 >= len(src) {
				return 0, errAt(src, j, "unterminated string starting")
			}
			j++
			r, size = utf8.DecodeRuneInString(src[j:])
			if err := checkRune(src, j, r, size); err != nil {
				return 0, err
			}
		}
		j += size
	}
	return 0, errAt(src, i, "unterminated string starting")
}

// scanWord returns the end of the bare word starting at i; a backslash
// keeps the next character in the word.
func scanWord(src string, i int) (int, error) {
	j := i
	for j < len(src) {
		r, size := utf8.DecodeRuneInString(src[j:])
		if err := checkRune(src, j, r, size); err != nil {
			return 0, err
		}
		if r == '\\' {
			if j+1 >= len(src) {
				return 0, errAt(src, j, "dangling backslash")
			}
			r2, size2 := utf8.DecodeRuneInString(src[j+1:])
			if err := checkRune(src, j+1, r2, size2); err != nil {
				return 0, err
			}
			j += 1 + size2
			continue
		}
		if isDelim(r) {
			break
		}
		j += size
	}
	return j, nil
}
