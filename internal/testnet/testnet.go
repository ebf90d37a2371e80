// Package testnet holds what tests need of the network: a loopback server that hands each
// connection to the test's own code.
package testnet

import (
	"net"
	"testing"
)

// Serve accepts connections on a loopback listener and serves each with serve, on a
// goroutine of its own, closing it after; the listener closes when the test ends. It
// returns the listener's address.
func Serve(t testing.TB, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return ln.Addr().String()
}
