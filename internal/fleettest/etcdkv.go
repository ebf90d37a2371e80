package fleettest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// Put, Delete and Get change and read etcd as another operator would, through etcd's
// own JSON gateway, written apart from the gateway's client (fleet/etcdsource) so that
// a test of that client does not check it with itself. They fail the test on error.

// Put sets key to value.
func (e *Etcd) Put(t testing.TB, key, value string) {
	t.Helper()
	e.kv(t, "/v3/kv/put", map[string]any{"key": []byte(key), "value": []byte(value)}, nil)
}

// Delete removes key.
func (e *Etcd) Delete(t testing.TB, key string) {
	t.Helper()
	e.kv(t, "/v3/kv/deleterange", map[string]any{"key": []byte(key)}, nil)
}

// Get returns key's value and whether it exists.
func (e *Etcd) Get(t testing.TB, key string) (string, bool) {
	t.Helper()
	var out struct {
		KVs []struct {
			Value []byte `json:"value"`
		} `json:"kvs"`
	}
	e.kv(t, "/v3/kv/range", map[string]any{"key": []byte(key)}, &out)
	if len(out.KVs) == 0 {
		return "", false
	}
	return string(out.KVs[0].Value), true
}

func (e *Etcd) kv(t testing.TB, path string, in, out any) {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Post(e.Endpoint+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("etcd %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("etcd %s: %s: %s", path, resp.Status, body)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatal(fmt.Errorf("etcd %s: %w", path, err))
		}
	}
}

// Revision returns etcd's current revision.
func (e *Etcd) Revision(t testing.TB) int64 {
	t.Helper()
	var out struct {
		Header struct {
			Revision int64 `json:"revision,string"`
		} `json:"header"`
	}
	e.kv(t, "/v3/kv/range", map[string]any{"key": []byte{0}}, &out)
	return out.Header.Revision
}

// Compact discards etcd's history before revision rev.
func (e *Etcd) Compact(t testing.TB, rev int64) {
	t.Helper()
	e.kv(t, "/v3/kv/compaction", map[string]any{"revision": fmt.Sprint(rev), "physical": true}, nil)
}
