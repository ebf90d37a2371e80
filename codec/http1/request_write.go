package http1

// The client side of a request head: what the gateway writes to a backend. The field
// checks are those the parser applies to what it reads, so the gateway never sends a
// head that it would itself refuse.

// ValidFieldName reports whether s is a field name HTTP can carry: a token (RFC 9110 5.1).
func ValidFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTchar[s[i]] {
			return false
		}
	}
	return true
}

// ValidFieldValue reports whether s can be sent as a field value: no control bytes but
// HTAB (an MMTP value is arbitrary bytes; a CR or LF would split the head).
func ValidFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isValueByte[s[i]] {
			return false
		}
	}
	return true
}

// AppendRequestLine appends "method SP target SP HTTP/1.1 CRLF". The caller has checked
// that method is a token and target holds no whitespace or control byte.
func AppendRequestLine(dst []byte, method, target string) []byte {
	dst = append(dst, method...)
	dst = append(dst, ' ')
	dst = append(dst, target...)
	return append(dst, " HTTP/1.1\r\n"...)
}

// AppendField appends "Name: value CRLF" with the name in canonical case. The caller has
// checked both with ValidFieldName and ValidFieldValue.
func AppendField(dst []byte, key, value string) []byte {
	dst = appendCanonical(dst, key)
	dst = append(dst, ": "...)
	dst = append(dst, value...)
	return append(dst, "\r\n"...)
}
