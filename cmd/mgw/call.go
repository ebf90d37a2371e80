package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp"
	"github.com/mgw-project/mgw/codec/mmtp/client"
)

// headerFlags collects repeated -H key:value flags.
type headerFlags codec.Header

func (h *headerFlags) String() string { return fmt.Sprint(*h) }

func (h *headerFlags) Set(s string) error {
	k, v, ok := strings.Cut(s, ":")
	if !ok {
		k, v, ok = strings.Cut(s, "=")
	}
	k = strings.TrimSpace(k)
	if !ok || k == "" {
		return fmt.Errorf("header %q is not key:value", s)
	}
	*h = append(*h, codec.Field{Key: strings.ToLower(k), Value: strings.TrimSpace(v)})
	return nil
}

// runCall is a curl for MMTP: it dials, optionally says HELLO, sends one REQUEST and
// prints the response body (headers too with -i, every frame with -v). It exits 0 for a
// 2xx status, 1 for any other status or failure.
func runCall(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mgw call", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mgw call [flags] OPERATION [BODY | -]\n\nBODY - reads the body from stdin.\n\nFlags:")
		fs.PrintDefaults()
	}
	addr := fs.String("addr", "127.0.0.1:9000", "gateway MMTP address")
	var hdr headerFlags
	fs.Var(&hdr, "H", "request header key:value (repeatable)")
	app := fs.String("app", "", "app-id (sent on HELLO and the request)")
	device := fs.String("device", "", "device-id")
	user := fs.String("user", "", "user-id")
	secretEnv := fs.String("secret-env", "", "environment variable holding the app's secret; signs HELLO and the request")
	hello := fs.Bool("hello", false, "send a HELLO first (implied by -app with a secret)")
	gz := fs.Bool("gzip", false, "gzip the body and set the GZIP flag")
	timeout := fs.Duration("timeout", 10*time.Second, "time allowed for the whole call")
	verbose := fs.Bool("v", false, "print every frame sent and received on stderr")
	include := fs.Bool("i", false, "print the response status and headers before the body")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		fs.Usage()
		return 2
	}
	op := fs.Arg(0)
	var body []byte
	if fs.NArg() == 2 {
		if fs.Arg(1) == "-" {
			b, err := io.ReadAll(io.LimitReader(stdin, mmtp.DefaultMaxBodyBytes+1))
			if err != nil {
				fmt.Fprintf(stderr, "mgw call: reading stdin: %v\n", err)
				return 1
			}
			body = b
		} else {
			body = []byte(fs.Arg(1))
		}
	}
	opts := client.Options{AppID: *app, DeviceID: *device, UserID: *user, Hello: *hello, Timeout: *timeout}
	if *secretEnv != "" {
		s := os.Getenv(*secretEnv)
		if s == "" {
			fmt.Fprintf(stderr, "mgw call: -secret-env %s: the variable is empty or unset\n", *secretEnv)
			return 2
		}
		opts.Secret, opts.Hello = []byte(s), true
	}
	if *verbose {
		opts.Trace = func(dir string, f *mmtp.Frame) { traceFrame(stderr, dir, f) }
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	c, err := client.Dial(ctx, *addr, opts)
	if err != nil {
		fmt.Fprintf(stderr, "mgw call: %v\n", err)
		return 1
	}
	defer c.Close()
	var resp *codec.Response
	if *gz {
		resp, err = c.CallGzip(ctx, op, codec.Header(hdr), body)
	} else {
		resp, err = c.Call(ctx, op, codec.Header(hdr), body)
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no response within %s", *timeout)
		}
		fmt.Fprintf(stderr, "mgw call: %s: %v\n", op, err)
		return 1
	}
	if *include || *verbose {
		fmt.Fprintf(stdout, "status: %d\n", resp.Status)
		for _, f := range resp.Header {
			fmt.Fprintf(stdout, "%s: %s\n", f.Key, f.Value)
		}
		fmt.Fprintln(stdout)
	}
	out := resp.Body
	if resp.Gzip {
		if out, err = mmtp.Decompress(nil, resp.Body, mmtp.DefaultMaxBodyBytes*4); err != nil {
			fmt.Fprintf(stderr, "mgw call: gunzip response: %v\n", err)
			return 1
		}
	}
	stdout.Write(out)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		fmt.Fprintln(stdout)
	}
	if resp.Status < 200 || resp.Status > 299 {
		fmt.Fprintf(stderr, "mgw call: %s: status %d %s\n", op, resp.Status, resp.Header.Value("error"))
		return 1
	}
	return 0
}

// traceFrame prints one frame as -v shows it: direction, type, stream, flags, headers
// (a `sign` value shortened), body size.
func traceFrame(w io.Writer, dir string, f *mmtp.Frame) {
	arrow := ">"
	if dir == "recv" {
		arrow = "<"
	}
	fmt.Fprintf(w, "%s %s stream=%d flags=0x%02x header=%dB body=%dB\n", arrow, f.Type, f.StreamID, f.Flags, len(f.Header), len(f.Body))
	f.Each(func(k, v []byte) bool {
		val := string(v)
		if string(k) == "sign" && len(val) > 12 {
			val = val[:12] + "..."
		}
		fmt.Fprintf(w, "%s   %s: %s\n", arrow, k, val)
		return true
	})
}
