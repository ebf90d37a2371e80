package main

import (
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/mgw-project/mgw/gateway"
)

const pushUsage = `Usage:
  mgw push -device D [-device D2 | -device D2,D3] -topic T [-app A]
           [-body TEXT | -body-file PATH | < stdin] [-ttl 60s] [-message-id ID] [-admin ADDR]

Publishes one message to each device's push log through the gateway's admin API
(POST /v1/push) and prints the seq and epoch it got; a connected device receives it at
once. The body is -body, the file -body-file ("-" is stdin), or stdin when it is a pipe
or a file; none of them is an empty body. ADDR is the admin listener: host:port, a URL,
or unix:/path (default 127.0.0.1:9901). When the gateway has admin.tokens, set
MGW_ADMIN_TOKEN to one of them; it is sent as a bearer token and never printed.
`

// runPush is `mgw push`: 0 published, 1 the gateway refused or could not be reached, 2 bad
// usage.
func runPush(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mgw push", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, pushUsage) }
	admin := fs.String("admin", "127.0.0.1:9901", "admin listener address (host:port, URL or unix:/path)")
	app := fs.String("app", "", "app id of the device(s)")
	var devices pushDevices
	fs.Var(&devices, "device", "device id; repeatable, or a comma list")
	topic := fs.String("topic", "", "topic, e.g. order.paid")
	body := fs.String("body", "", "body text")
	bodyFile := fs.String("body-file", "", `file holding the body ("-": stdin)`)
	ttl := fs.String("ttl", "", "time to live, e.g. 60s (default: the gateway's push.default_ttl)")
	msgID := fs.String("message-id", "", "your id for the message, passed to the device")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mgw push: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if len(devices) == 0 || *topic == "" {
		fmt.Fprint(stderr, "mgw push: -device and -topic are required\n\n"+pushUsage)
		return 2
	}
	bodySet := false
	fs.Visit(func(f *flag.Flag) { bodySet = bodySet || f.Name == "body" })
	if bodySet && *bodyFile != "" {
		fmt.Fprintln(stderr, "mgw push: give -body or -body-file, not both")
		return 2
	}
	data := []byte(*body)
	var err error
	switch {
	case *bodyFile == "-":
		data, err = io.ReadAll(stdin)
	case *bodyFile != "":
		data, err = os.ReadFile(*bodyFile)
	case !bodySet && stdinHasData(stdin):
		data, err = io.ReadAll(stdin)
	}
	if err != nil {
		fmt.Fprintf(stderr, "mgw push: reading the body: %v\n", err)
		return 2
	}
	req := gateway.PublishRequest{App: *app, Topic: *topic, TTL: *ttl, MessageID: *msgID}
	if utf8.Valid(data) {
		s := string(data)
		req.Body = &s
	} else {
		s := base64.StdEncoding.EncodeToString(data)
		req.BodyBase64 = &s
	}
	if len(devices) == 1 {
		req.Device = devices[0]
	} else {
		req.Devices = devices
	}
	c := newAdminClient(*admin, os.Getenv("MGW_ADMIN_TOKEN"))
	if req.Devices == nil {
		var res gateway.PublishResult
		if err := c.do(http.MethodPost, "/v1/push", req, &res); err != nil {
			fmt.Fprintf(stderr, "mgw push: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s seq %d epoch %s\n", req.Device, res.Seq, res.Epoch)
		return 0
	}
	var out struct {
		Results []gateway.PublishResult `json:"results"`
	}
	if err := c.do(http.MethodPost, "/v1/push", req, &out); err != nil {
		fmt.Fprintf(stderr, "mgw push: %v\n", err)
		return 1
	}
	code := 0
	for _, r := range out.Results {
		if r.Error != "" {
			fmt.Fprintf(stdout, "%s refused: %s\n", r.Device, r.Error)
			code = 1
			continue
		}
		fmt.Fprintf(stdout, "%s seq %d epoch %s\n", r.Device, r.Seq, r.Epoch)
	}
	return code
}

// stdinHasData: stdin is a pipe or a file, not a terminal (nor /dev/null, which is a
// character device too), so reading it will not wait for a person to type.
func stdinHasData(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return r != nil
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice == 0
}

// pushDevices collects -device values, repeated or comma-separated.
type pushDevices []string

func (d *pushDevices) String() string { return strings.Join(*d, ",") }

func (d *pushDevices) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s == "" {
			return fmt.Errorf("empty device id in %q", v)
		}
		*d = append(*d, s)
	}
	return nil
}
