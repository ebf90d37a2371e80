package gateway

import (
	"net"
	"testing"

	"github.com/mgw-project/mgw/config"
)

func TestAdminPolicyHosts(t *testing.T) {
	p, err := newAdminPolicy(&config.Admin{Listen: "0.0.0.0:9901", Hosts: []string{"mgw-admin.internal", "::1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	local := &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 9901}
	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST:9901": true, "localhost.:1234": true,
		"10.1.2.3:9901": true, "10.1.2.3": true, // the IP the client connected to
		"mgw-admin.internal:9901": true, "[::1]:9901": true,
		"0.0.0.0:9901":  false, // the wildcard is not an address anyone connects to
		"10.1.2.4:9901": false, "evil.example": false, "evil.example:9901": false,
		"localhost.evil.example": false, "127.0.0.1:9901": false, "": false,
	} {
		if got := p.hostAllowed(host, local); got != want {
			t.Errorf("hostAllowed(%q) = %v, want %v", host, got, want)
		}
	}
	unix := &net.UnixAddr{Name: "/run/mgw/admin.sock", Net: "unix"}
	for host, want := range map[string]bool{"127.0.0.1:9901": true, "[::1]:80": true, "localhost": true, "10.1.2.3": false, "evil.example": false} {
		if got := p.hostAllowed(host, unix); got != want {
			t.Errorf("on a unix socket, hostAllowed(%q) = %v, want %v", host, got, want)
		}
	}
	for origin, want := range map[string]bool{
		"http://localhost:9901": true, "https://mgw-admin.internal": true, "http://10.1.2.3:9901": true,
		"http://evil.example": false, "null": false, "file://": false, "chrome-extension://abc": false,
	} {
		if got := p.originAllowed(origin, local); got != want {
			t.Errorf("originAllowed(%q) = %v, want %v", origin, got, want)
		}
	}
}

func TestAdminPolicyMatch(t *testing.T) {
	env := map[string]string{
		"A": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "B": "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
	}
	p, err := newAdminPolicy(&config.Admin{Listen: "127.0.0.1:0", Tokens: []config.AdminToken{
		{Name: "old", Env: "A"}, {Name: "new", Env: "B", ReadOnly: true},
	}}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := p.match(env["A"]); !ok || k.name != "old" || k.readOnly {
		t.Errorf("match(A) = %+v %v", k, ok)
	}
	if k, ok := p.match(env["B"]); !ok || k.name != "new" || !k.readOnly {
		t.Errorf("match(B) = %+v %v", k, ok)
	}
	for _, bad := range []string{"", env["A"][:31], env["A"] + "a", "Bearer " + env["A"]} {
		if k, ok := p.match(bad); ok {
			t.Errorf("match(%q) = %+v", bad, k)
		}
	}
	if p.hosts["127.0.0.1"] != true {
		t.Errorf("the listen host is not an accepted name: %v", p.hosts)
	}
}
