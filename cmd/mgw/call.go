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
	cf := addConnFlags(fs, " and the request")
	var hdr headerFlags
	fs.Var(&hdr, "H", "request header key:value (repeatable)")
	hello := fs.Bool("hello", false, "send a HELLO first (implied by -app with a secret)")
	gz := fs.Bool("gzip", false, "gzip the body and set the GZIP flag")
	timeout := fs.Duration("timeout", 10*time.Second, "time allowed for the whole call")
	include := fs.Bool("i", false, "print the response status and headers before the body")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
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
	opts, err := cf.options(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "mgw call: %v\n", err)
		return 2
	}
	opts.Hello = opts.Hello || *hello
	opts.Timeout = *timeout
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	c, err := client.Dial(ctx, *cf.addr, opts)
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
	if *include || *cf.verbose {
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

// connFlags say how to reach the gateway and as whom: the flags `mgw call` and `mgw watch`
// share.
type connFlags struct {
	addr, app, device, user, secretEnv *string
	verbose                            *bool
}

// addConnFlags registers the connection flags; also names what besides HELLO carries the
// identity and signature (" and the request"), if anything.
func addConnFlags(fs *flag.FlagSet, also string) *connFlags {
	return &connFlags{
		addr:      fs.String("addr", "127.0.0.1:9000", "gateway MMTP address"),
		app:       fs.String("app", "", "app-id (sent on HELLO"+also+")"),
		device:    fs.String("device", "", "device-id"),
		user:      fs.String("user", "", "user-id"),
		secretEnv: fs.String("secret-env", "", "environment variable holding the app's secret; signs HELLO"+also),
		verbose:   fs.Bool("v", false, "print every frame sent and received on stderr"),
	}
}

// options builds the client options the flags describe; a secret implies HELLO.
func (cf *connFlags) options(stderr io.Writer) (client.Options, error) {
	opts := client.Options{AppID: *cf.app, DeviceID: *cf.device, UserID: *cf.user}
	if *cf.secretEnv != "" {
		s := os.Getenv(*cf.secretEnv)
		if s == "" {
			return opts, fmt.Errorf("-secret-env %s: the variable is empty or unset", *cf.secretEnv)
		}
		opts.Secret, opts.Hello = []byte(s), true
	}
	if *cf.verbose {
		opts.Trace = func(dir string, f *mmtp.Frame) { traceFrame(stderr, dir, f) }
	}
	return opts, nil
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
