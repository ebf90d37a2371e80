package client

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/mgw-project/mgw/codec/mmtp"
)

// Probe checks, before any load, that target is reachable and speaks protocol: for MMTP
// it sends a PING and wants a PONG with the same body; for HTTP it sends a GET and wants an
// HTTP/1.x status line. A wrong target fails here in seconds with a message that says what
// was found, instead of as a run full of errors.
func Probe(target, protocol string, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	c, err := net.DialTimeout("tcp", target, timeout)
	if err != nil {
		return fmt.Errorf("target %s unreachable: %w", target, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	switch protocol {
	case "mmtp":
		payload := []byte("mgwprobe")
		if _, err := c.Write(mmtp.AppendPing(nil, payload)); err != nil {
			return fmt.Errorf("target %s: writing PING: %w", target, err)
		}
		buf := make([]byte, 0, 512)
		tmp := make([]byte, 512)
		for {
			n, rerr := c.Read(tmp)
			buf = append(buf, tmp[:n]...)
			f, fl, perr := mmtp.Parse(buf, nil)
			if perr != nil {
				return fmt.Errorf("target %s does not speak MMTP: first bytes %q: %w", target, clip(buf), perr)
			}
			if fl > 0 {
				if f.Type == mmtp.TypePong && bytes.Equal(f.Body, payload) {
					return nil
				}
				if f.Type == mmtp.TypeGoAway {
					r, _ := f.Get("reason")
					return fmt.Errorf("target %s answered PING with GOAWAY (reason %q)", target, r)
				}
				buf = buf[fl:] // e.g. a PING of its own; keep waiting for the PONG
				continue
			}
			if rerr != nil {
				return probeReadErr(target, "PONG", buf, rerr)
			}
			if len(buf) > 64<<10 {
				return fmt.Errorf("target %s: no PONG in the first 64 KiB", target)
			}
		}
	case "http1", "http":
		if _, err := fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target); err != nil {
			return fmt.Errorf("target %s: writing request: %w", target, err)
		}
		buf := make([]byte, 16)
		n, rerr := readAtLeast(c, buf)
		if n >= 8 && bytes.HasPrefix(buf, []byte("HTTP/1.")) {
			return nil
		}
		if n > 0 {
			return fmt.Errorf("target %s does not speak HTTP/1.x: first bytes %q", target, buf[:n])
		}
		return probeReadErr(target, "HTTP status line", nil, rerr)
	}
	return fmt.Errorf("protocol %q: want mmtp or http1", protocol)
}

func readAtLeast(c net.Conn, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := c.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func probeReadErr(target, want string, got []byte, err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		if len(got) > 0 {
			return fmt.Errorf("target %s: no %s before the timeout (got %q)", target, want, clip(got))
		}
		return fmt.Errorf("target %s: no %s before the timeout: is it the right port and protocol?", target, want)
	}
	return fmt.Errorf("target %s: closed before a %s (%v)", target, want, err)
}
