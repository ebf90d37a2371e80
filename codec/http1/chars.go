package http1

// Character classes from RFC 9110 5.6.2 and RFC 9112, as 256-entry tables so the hot
// loops do one load per byte.

// isTchar: token = 1*tchar; tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" /
// "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA.
var isTchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// isValueByte: field-vchar / SP / HTAB, where field-vchar = VCHAR / obs-text. Everything
// but the controls (0x00-0x1F except HTAB) and DEL.
var isValueByte = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c >= 0x20 && c != 0x7f || c == '\t'
	}
	return t
}()

// isTargetByte: the bytes a request-target may hold. RFC 3986 allows fewer, but clients
// send raw '{', '|', '"' and the like in queries and every major server accepts them;
// what matters for safety is that no whitespace, control byte or non-ASCII byte gets
// through (those are where parsers disagree), and no '#' (a fragment is never sent).
var isTargetByte = func() (t [256]bool) {
	for c := 0x21; c < 0x7f; c++ {
		t[c] = c != '#'
	}
	return t
}()

// isHostByte: reg-name / IPv4 / IP-literal plus ":" port, as bytes (RFC 3986 3.2.2).
var isHostByte = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "-._~!$&'()*+,;=:[]%" {
		t[c] = true
	}
	return t
}()

// lowerTab maps a byte to its ASCII lowercase, branch-free for the per-field loop.
var lowerTab = func() (t [256]byte) {
	for c := range 256 {
		t[c] = lower(byte(c))
	}
	return t
}()

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// equalFoldASCII compares s to a lowercase ASCII literal, ignoring s's case.
func equalFoldASCII(s, lowerLit string) bool {
	if len(s) != len(lowerLit) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if lower(s[i]) != lowerLit[i] {
			return false
		}
	}
	return true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func trimOWSString(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}
