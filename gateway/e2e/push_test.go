package e2e

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp"
)

const pushConfig = `
admin:
  listen: 127.0.0.1:0
  tokens:
    - {name: ops, env: MGW_ADMIN_TOKEN}
listeners:
  - {name: mobile, listen: 127.0.0.1:0, protocol: mmtp}
`

// pushDevice is a device written from mmtp.md alone: HELLO, then PUSH frames it
// acknowledges.
type pushDevice struct {
	t   *testing.T
	c   net.Conn
	dec *mmtp.Decoder
}

func helloDevice(t *testing.T, addr, app, dev string) (*pushDevice, map[string]string) {
	t.Helper()
	return helloWith(t, addr, codec.Header{{Key: "app-id", Value: app}, {Key: "device-id", Value: dev}})
}

// helloWith dials addr and sends a HELLO with hdr; the 200's headers come back.
func helloWith(t *testing.T, addr string, hdr codec.Header) (*pushDevice, map[string]string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	d := &pushDevice{t: t, c: c, dec: mmtp.NewDecoder(nil)}
	c.Write(mmtp.AppendFrame(nil, mmtp.TypeHello, 0, 1, hdr, nil))
	f := d.frame()
	if f.Type != mmtp.TypeResponse {
		t.Fatalf("HELLO answered with %v", f.Type)
	}
	return d, frameHeaders(&f)
}

func (d *pushDevice) frame() mmtp.Frame {
	d.t.Helper()
	d.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	f, err := d.dec.ReadFrame(d.c)
	if err != nil {
		d.t.Fatalf("read: %v", err)
	}
	return f
}

// push reads the next PUSH, acknowledges it and returns its headers and body.
func (d *pushDevice) push() (map[string]string, string) {
	d.t.Helper()
	f := d.frame()
	if f.Type != mmtp.TypePush {
		d.t.Fatalf("got %v, want PUSH", f.Type)
	}
	h, body := frameHeaders(&f), string(f.Body)
	d.c.Write(mmtp.AppendPushAck(nil, f.StreamID))
	return h, body
}

func frameHeaders(f *mmtp.Frame) map[string]string {
	h := map[string]string{}
	f.Each(func(k, v []byte) bool { h[string(k)] = string(v); return true })
	return h
}

// TestPushCommandAndCurl publishes with `mgw push` and curl to a device connected to the
// real `mgw serve`: without the admin token both are refused 401; with it the device
// receives each message at once, in seq order.
func TestPushCommandAndCurl(t *testing.T) {
	g := serve(t, pushConfig, "MGW_ADMIN_TOKEN="+adminToken)
	admin := g.addrs["admin"]
	dev, h := helloDevice(t, g.addrs["mobile"], "shop", "phone-1")
	if h["status"] != "200" || h["push-seq"] != "0" || h["push-epoch"] == "" {
		t.Fatalf("HELLO 200 headers %v", h)
	}
	epoch := h["push-epoch"]

	args := []string{"push", "-admin", admin, "-app", "shop", "-device", "phone-1,phone-2", "-topic", "order.paid", "-body", "hi"}
	if code, out := runMgw(t, []string{"MGW_ADMIN_TOKEN="}, args...); code != 1 || !strings.Contains(out, "401") {
		t.Fatalf("mgw push without a token: exit %d\n%s", code, out)
	}
	code, out := runMgw(t, []string{"MGW_ADMIN_TOKEN=" + adminToken}, args...)
	want := regexp.MustCompile(`(?m)^phone-1 seq 1 epoch ` + regexp.QuoteMeta(epoch) + `\nphone-2 seq 1 epoch `)
	if code != 0 || !want.MatchString(out) || strings.Contains(out, adminToken) {
		t.Fatalf("mgw push: exit %d\n%s", code, out)
	}
	if h, body := dev.push(); h["seq"] != "1" || h["topic"] != "order.paid" || h["epoch"] != epoch || body != "hi" {
		t.Fatalf("push 1: %v %q", h, body)
	}

	file := filepath.Join(t.TempDir(), "body.bin")
	os.WriteFile(file, []byte{0xff, 0x00, 0x01}, 0o600)
	code, out = runMgw(t, []string{"MGW_ADMIN_TOKEN=" + adminToken}, "push", "-admin", admin, "-app", "shop",
		"-device", "phone-1", "-topic", "blob", "-body-file", file, "-message-id", "m-2", "-ttl", "1h")
	if code != 0 || !strings.Contains(out, "phone-1 seq 2 epoch "+epoch) {
		t.Fatalf("mgw push -body-file: exit %d\n%s", code, out)
	}
	if h, body := dev.push(); h["seq"] != "2" || h["message-id"] != "m-2" || body != "\xff\x00\x01" {
		t.Fatalf("push 2: %v %q", h, body)
	}

	body := `{"app":"shop","device":"phone-1","topic":"t","body_base64":"aGk="}`
	out, err := curl(t, "-X", "POST", "-d", body, "http://"+admin+"/v1/push")
	if err != nil || !strings.Contains(out, "401") && !strings.Contains(out, "Bearer") {
		t.Fatalf("curl without a token: %v %s", err, out)
	}
	out, err = curl(t, "-X", "POST", "-H", "Authorization: Bearer "+adminToken, "-w", "%{http_code}", "-d", body, "http://"+admin+"/v1/push")
	if err != nil || out != `{"seq":3,"epoch":"`+epoch+`"}`+"\n202" {
		t.Fatalf("curl: %v %q", err, out)
	}
	if h, body := dev.push(); h["seq"] != "3" || body != "hi" {
		t.Fatalf("push 3: %v %q", h, body)
	}
	out, err = curl(t, "-X", "POST", "-H", "Authorization: Bearer "+adminToken, "-w", "%{http_code}",
		"-d", `{"device":"phone-1","topic":"t","bdy":"x"}`, "http://"+admin+"/v1/push")
	if err != nil || !strings.Contains(out, `unknown field \"bdy\"`) || !strings.HasSuffix(out, "400") {
		t.Fatalf("curl with an unknown field: %v %q", err, out)
	}
}
