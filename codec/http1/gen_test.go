package http1

import (
	"math/rand/v2"
	"strconv"
	"strings"
)

// genRequest builds a request from pieces that are mostly valid, with a chance of the
// kinds of trouble parsers disagree about, so a differential run explores both the
// accepted space and its edges.
func genRequest(r *rand.Rand) []byte {
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	var b strings.Builder
	if r.IntN(20) == 0 {
		b.WriteString("\r\n")
	}
	method := pick("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "M-SEARCH", "get", "X!Y")
	target := pick("/", "/api/user.get", "/api/a?b=c&d=%20", "/p/{x}|y", "http://h.example/x?y",
		"/a;b", "https://h:8443", "/a%00b", "//double", "/~user/'q'")
	version := pick("HTTP/1.1", "HTTP/1.1", "HTTP/1.1", "HTTP/1.0")
	if method == "OPTIONS" && r.IntN(2) == 0 {
		target = "*"
	}
	b.WriteString(method + " " + target + " " + version + "\r\n")

	hasHost := version == "HTTP/1.1" || r.IntN(2) == 0
	if hasHost {
		b.WriteString("Host: " + pick("a.example", "a.example:8080", "[::1]:80", "", "A-B.c") + "\r\n")
	}
	nfields := r.IntN(6)
	for i := 0; i < nfields; i++ {
		name := pick("X-A", "x-a", "Accept", "User-Agent", "Cookie", "Content-Type", "Connection",
			"Expect", "Pragma", "Operation-Type", "X_Under", "x-b3-TraceId", "Trailer")
		value := pick("1", "a b", " padded ", "\tt\t", "keep-alive", "close", "100-continue",
			"no-cache", "caf\xc3\xa9", "", "a,b", `"q"`, "x=1; y=2")
		b.WriteString(name + ":" + pick(" ", "", "  ") + value + "\r\n")
	}

	body := pick("", "hello", "0123456789abcdef", strings.Repeat("z", 300))
	framing := r.IntN(4)
	if framing == 3 && version == "HTTP/1.0" && r.IntN(4) != 0 {
		framing = 1 // chunked in 1.0 is a class of its own; keep it rare
	}
	switch framing {
	case 0: // no framing
		b.WriteString("\r\n")
	case 1, 2:
		if body != "" || r.IntN(2) == 0 {
			b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
			if r.IntN(8) == 0 {
				b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
			}
		}
		b.WriteString("\r\n" + body)
	case 3:
		b.WriteString("Transfer-Encoding: " + pick("chunked", "Chunked", " chunked ") + "\r\n\r\n")
		for rest := body; rest != ""; {
			n := 1 + r.IntN(len(rest))
			b.WriteString(pick(strconv.FormatInt(int64(n), 16), strings.ToUpper(strconv.FormatInt(int64(n), 16)),
				"0"+strconv.FormatInt(int64(n), 16)))
			b.WriteString(pick("", "", ";ext", ";a=b;c=\"d\""))
			b.WriteString("\r\n" + rest[:n] + "\r\n")
			rest = rest[n:]
		}
		b.WriteString("0\r\n")
		if r.IntN(3) == 0 {
			b.WriteString("X-Trailer: t\r\n")
		}
		b.WriteString("\r\n")
	}
	out := []byte(b.String())
	// Mutate: a few byte edits with bytes that matter to framing.
	if r.IntN(3) == 0 {
		for k := r.IntN(3) + 1; k > 0 && len(out) > 0; k-- {
			i := r.IntN(len(out))
			const edits = " \t\r\n:,;0aZ\x00\x7f\x80/"
			c := edits[r.IntN(len(edits))]
			switch r.IntN(3) {
			case 0:
				out[i] = c
			case 1:
				out = append(out[:i], append([]byte{c}, out[i:]...)...)
			case 2:
				out = append(out[:i], out[i+1:]...)
			}
		}
	}
	return out
}
