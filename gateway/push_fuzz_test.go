package gateway

import (
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/mgw-project/mgw/config"
)

// FuzzDecodePublish feeds POST /v1/push bodies to the request checker: it must never
// panic, and what it accepts must respect the bounds the store and the PUSH encoder rely
// on. Failing inputs go to testdata/fuzz/FuzzDecodePublish as regressions.
func FuzzDecodePublish(f *testing.F) {
	for _, s := range []string{
		`{"app":"a","device":"d","topic":"t","body":"x"}`,
		`{"devices":["a","b"],"topic":"t","body_base64":"aGk=","ttl":"60s","message_id":"m"}`,
		`{"device":"d","topic":"t","body":"x","body_base64":"eA=="}`,
		`{"device":"d","topic":"t","ttl":"-1s"}`,
		`{"devices":[],"topic":"t"}`,
		`{"device":"d","topic":"t"} {}`,
		`[1,2]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	cfg := config.Default()
	cfg.Push.MaxBytes = "64B"
	h := newPushHub(cfg.Push, nil, nil, metrics.NewSet(), nil)
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, b []byte) {
		req, m, err := h.decodePublish(b, now)
		if err != nil {
			return
		}
		if int64(len(m.Body)) > h.maxLen || m.Topic == "" || len(m.Topic) > maxPushIDLen || len(m.MessageID) > maxPushIDLen {
			t.Fatalf("accepted out of bounds: %+v", m)
		}
		if (req.Device == "") == (req.Devices == nil) {
			t.Fatalf("accepted with device %q and devices %q", req.Device, req.Devices)
		}
		for _, d := range req.Devices {
			if d == "" || len(d) > maxPushIDLen {
				t.Fatalf("accepted device %q", d)
			}
		}
		if m.Expires <= now.UnixMilli() || m.Expires > now.Add(h.maxTTL).UnixMilli() {
			t.Fatalf("expires %d outside (now, now+max_ttl]", m.Expires)
		}
	})
}
