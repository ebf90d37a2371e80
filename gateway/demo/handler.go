package demo

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

type handler struct {
	// name is the X-Demo-Backend header value, shared read-only by every response.
	name []string
}

var (
	textPlain   = []string{"text/plain; charset=utf-8"}
	appJSON     = []string{"application/json"}
	octetStream = []string{"application/octet-stream"}
)

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header()["X-Demo-Backend"] = h.name
	if r.URL.Path == "/healthz" {
		reply(w, http.StatusOK, "ok\n")
		return
	}
	op := r.Header.Get("Operation-Type")
	if op == "" && r.Method == http.MethodPost {
		op = lastSegment(r.URL.Path)
	}
	if !strings.HasPrefix(op, "demo.") {
		describe(w, r)
		return
	}
	switch op {
	case "demo.echo":
		echo(w, r)
	case "demo.sleep":
		sleep(w, r)
	case "demo.status":
		status(w, r)
	case "demo.size":
		size(w, r)
	default:
		reply(w, http.StatusNotFound, "unknown operation "+strconv.Quote(op)+"\n")
	}
}

func lastSegment(p string) string {
	return p[strings.LastIndexByte(p, '/')+1:]
}

// reply answers a short text body with its Content-Length.
func reply(w http.ResponseWriter, code int, body string) {
	hdr := w.Header()
	hdr["Content-Type"] = textPlain
	hdr["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(code)
	io.WriteString(w, body)
}

// bufPool recycles echo buffers; most requests are small, so the pool keeps the load-test
// path free of per-request body allocations.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func echo(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > MaxEchoBody {
		reply(w, http.StatusRequestEntityTooLarge, "demo.echo: body over "+strconv.Itoa(MaxEchoBody)+" bytes\n")
		return
	}
	bp := bufPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 1<<20 { // do not keep huge buffers alive
			*bp = (*bp)[:0]
			bufPool.Put(bp)
		}
	}()
	body, err := readAll((*bp)[:0], r.Body, MaxEchoBody)
	*bp = body
	if err != nil {
		if errors.Is(err, errTooLarge) {
			reply(w, http.StatusRequestEntityTooLarge, "demo.echo: body over "+strconv.Itoa(MaxEchoBody)+" bytes\n")
		} else {
			reply(w, http.StatusBadRequest, "demo.echo: reading body: "+err.Error()+"\n")
		}
		return
	}
	hdr := w.Header()
	if ct, ok := r.Header["Content-Type"]; ok {
		hdr["Content-Type"] = ct
	} else {
		hdr["Content-Type"] = octetStream
	}
	if ce, ok := r.Header["Content-Encoding"]; ok {
		hdr["Content-Encoding"] = ce
	}
	hdr["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

var errTooLarge = errors.New("body too large")

// readAll appends r to b, failing once more than limit bytes arrive.
func readAll(b []byte, r io.Reader, limit int) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if len(b) > limit {
			return b, errTooLarge
		}
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// intBody reads a small decimal integer from the request body, which must hold only it
// (surrounding spaces and a newline allowed). It reads at most 32 bytes into a stack buffer.
func intBody(r *http.Request) (int, error) {
	var a [32]byte
	n := 0
	for n < len(a) {
		m, err := r.Body.Read(a[n:])
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	if n == len(a) {
		return 0, errors.New("body is longer than a number")
	}
	s := strings.TrimSpace(string(a[:n]))
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, errors.New("body " + strconv.Quote(s) + " is not an integer")
	}
	return v, nil
}

// maxSleepBody bounds a demo.sleep body: the milliseconds and a short tag.
const maxSleepBody = 1024

// sleep waits the milliseconds the body starts with, then answers the body itself: "N",
// or "N" and whitespace and a tag, so the answers of concurrent sleeps of one length can
// be told apart.
func sleep(w http.ResponseWriter, r *http.Request) {
	var a [128]byte
	body, err := readAll(a[:0], r.Body, maxSleepBody)
	if errors.Is(err, errTooLarge) {
		err = errors.New("body over " + strconv.Itoa(maxSleepBody) + " bytes")
	}
	var ms int
	if err == nil {
		ms, err = leadingInt(body)
	}
	if err == nil && (ms < 0 || time.Duration(ms)*time.Millisecond > MaxSleep) {
		err = errors.New(strconv.Itoa(ms) + " is not in 0.." + strconv.Itoa(int(MaxSleep/time.Millisecond)))
	}
	if err != nil {
		reply(w, http.StatusBadRequest, "demo.sleep: "+err.Error()+"\n")
		return
	}
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
		return // the client went away: nobody reads an answer
	}
	reply(w, http.StatusOK, string(body))
}

// leadingInt reads the decimal integer a body starts with (after optional whitespace),
// which whitespace or the end must follow.
func leadingInt(b []byte) (int, error) {
	s := strings.TrimLeft(string(b), " \t\r\n")
	num := s
	if i := strings.IndexAny(s, " \t\r\n"); i >= 0 {
		num = s[:i]
	}
	v, err := strconv.Atoi(num)
	if err != nil {
		return 0, errors.New("body " + strconv.Quote(clipTag(num)) + " does not start with an integer")
	}
	return v, nil
}

func clipTag(s string) string {
	if len(s) > 32 {
		return s[:32]
	}
	return s
}

// status answers a final status. 1xx codes are rejected: they are informational in
// HTTP/1.1, so net/http would send them and then a 200, not "answer" them.
func status(w http.ResponseWriter, r *http.Request) {
	code, err := intBody(r)
	if err == nil && (code < 200 || code > 599) {
		err = errors.New(strconv.Itoa(code) + " is not a final status 200..599")
	}
	if err != nil {
		reply(w, http.StatusBadRequest, "demo.status: "+err.Error()+"\n")
		return
	}
	if code == http.StatusNoContent || code == http.StatusNotModified {
		w.Header()["Content-Length"] = []string{"0"}
		w.WriteHeader(code)
		return
	}
	reply(w, code, "status "+strconv.Itoa(code)+"\n")
}

// filler is the content of demo.size bodies, written in chunks.
var filler = func() []byte {
	b := make([]byte, 32<<10)
	for i := range b {
		b[i] = 'x'
	}
	return b
}()

func size(w http.ResponseWriter, r *http.Request) {
	n, err := intBody(r)
	if err == nil && (n < 0 || n > MaxSize) {
		err = errors.New(strconv.Itoa(n) + " is not in 0.." + strconv.Itoa(MaxSize))
	}
	if err != nil {
		reply(w, http.StatusBadRequest, "demo.size: "+err.Error()+"\n")
		return
	}
	hdr := w.Header()
	hdr["Content-Type"] = octetStream
	hdr["Content-Length"] = []string{strconv.Itoa(n)}
	w.WriteHeader(http.StatusOK)
	for n > 0 {
		k := min(n, len(filler))
		if _, err := w.Write(filler[:k]); err != nil {
			return
		}
		n -= k
	}
}

// description is what a plain request learns about itself.
type description struct {
	Backend    string              `json:"backend"`
	Method     string              `json:"method"`
	Path       string              `json:"path"`
	Query      string              `json:"query,omitempty"`
	Host       string              `json:"host"`
	RemoteAddr string              `json:"remote_addr"`
	Proto      string              `json:"proto"`
	Headers    map[string][]string `json:"headers"`
	BodyBytes  int64               `json:"body_bytes"`
}

// maxDescribedBody bounds how much of a described request's body is drained and counted.
const maxDescribedBody = 16 << 20

func describe(w http.ResponseWriter, r *http.Request) {
	n, _ := io.Copy(io.Discard, io.LimitReader(r.Body, maxDescribedBody))
	d := description{
		Backend:    w.Header()["X-Demo-Backend"][0],
		Method:     r.Method,
		Path:       r.URL.Path,
		Query:      r.URL.RawQuery,
		Host:       r.Host,
		RemoteAddr: r.RemoteAddr,
		Proto:      r.Proto,
		Headers:    r.Header,
		BodyBytes:  n,
	}
	b, err := json.Marshal(&d)
	if err != nil {
		reply(w, http.StatusInternalServerError, "demo: "+err.Error()+"\n")
		return
	}
	b = append(b, '\n')
	hdr := w.Header()
	hdr["Content-Type"] = appJSON
	hdr["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}
