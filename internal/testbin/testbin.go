// Package testbin finds the programs a test starts (nginx, etcd, chromium, ...): a missing
// one skips the test on a developer's box and fails it in CI (CI set), where
// scripts/deps.sh installs them, so a broken install step cannot pass as green.
package testbin

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run in CI: CI set to anything but "", "0" or "false".
func InCI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "0" && v != "false"
}

// Need returns the path of program name, from Debian package pkg, or ends the test.
func Need(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if InCI() {
		t.Fatalf("%s is not installed and CI is set: .ci/run must install the Debian package %s (scripts/deps.sh)", name, pkg)
	}
	t.Skipf("%s is not installed (Debian package %s; scripts/deps.sh installs it)", name, pkg)
	return ""
}
