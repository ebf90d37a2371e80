package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/mgw-project/mgw/internal/jsonerr"
	"github.com/mgw-project/mgw/push"
)

// Bounds of a publish request. The JSON carries the body base64-encoded at worst (4/3 of
// push.max_bytes) plus a device list; the ids end up in PUSH headers, whose block a
// default client caps at 16 KiB, so each is kept well under that.
const (
	maxPublishRequest = 1 << 20
	maxPublishDevices = 10000
	maxPushIDLen      = 1024 // app, device, topic, message_id
)

// PublishRequest is the JSON of POST /v1/push: one device (Device) or several (Devices).
type PublishRequest struct {
	App        string   `json:"app"`
	Device     string   `json:"device,omitempty"`
	Devices    []string `json:"devices,omitempty"`
	Topic      string   `json:"topic"`
	Body       *string  `json:"body,omitempty"`        // text
	BodyBase64 *string  `json:"body_base64,omitempty"` // bytes
	TTL        string   `json:"ttl,omitempty"`         // e.g. "60s"; default push.default_ttl
	MessageID  string   `json:"message_id,omitempty"`
}

// PublishResult is one device's outcome: its seq and epoch, or the error that kept the
// message out of its log. The single-device form answers {"seq", "epoch"} alone.
type PublishResult struct {
	Device string `json:"device,omitempty"`
	Seq    uint64 `json:"seq,omitempty"`
	Epoch  string `json:"epoch,omitempty"`
	Error  string `json:"error,omitempty"`
}

// servePublish is POST /v1/push: it appends the message to each named device's log and
// sends it at once to a device that is connected. 202: in the log, not necessarily
// delivered. 400 names the bad field; 503 names push.budget when the budget is full.
func (h *pushHub) servePublish(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPublishRequest))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeAdminErr(w, http.StatusBadRequest, fmt.Sprintf("push: request body: over %d bytes", maxPublishRequest))
			return
		}
		writeAdminErr(w, http.StatusBadRequest, "push: request body: "+err.Error())
		return
	}
	req, msg, err := h.decodePublish(raw, time.Now())
	if err != nil {
		writeAdminErr(w, http.StatusBadRequest, "push: "+err.Error())
		return
	}
	if req.Devices == nil {
		res := h.publish(push.Key{App: req.App, Device: req.Device}, msg)
		if res.Error != "" {
			writeAdminErr(w, http.StatusServiceUnavailable, res.Error)
			return
		}
		writeJSONStatus(w, http.StatusAccepted, PublishResult{Seq: res.Seq, Epoch: res.Epoch})
		return
	}
	out := struct {
		Results []PublishResult `json:"results"`
	}{make([]PublishResult, len(req.Devices))}
	failed := 0
	for i, d := range req.Devices {
		out.Results[i] = h.publish(push.Key{App: req.App, Device: d}, msg)
		out.Results[i].Device = d
		if out.Results[i].Error != "" {
			failed++
		}
	}
	if failed == len(req.Devices) {
		writeAdminErr(w, http.StatusServiceUnavailable, out.Results[0].Error)
		return
	}
	// Some in, some refused by the budget: 202 with each device's outcome.
	writeJSONStatus(w, http.StatusAccepted, out)
}

func (h *pushHub) publish(k push.Key, m push.Message) PublishResult {
	seq, epoch, err := h.store.Append(k, m, time.Now())
	if err != nil {
		if errors.Is(err, push.ErrBudget) {
			return PublishResult{Error: fmt.Sprintf("push.budget: the gateway-wide push budget (%s) is used up; devices are not acknowledging", h.cfg.Budget)}
		}
		return PublishResult{Error: err.Error()}
	}
	h.notify(k)
	if h.presence != nil {
		h.presence.Forward(k) // held by another instance: tell it
	}
	return PublishResult{Seq: seq, Epoch: epoch}
}

// decodePublish checks a publish request and builds its message; errors name the field.
func (h *pushHub) decodePublish(raw []byte, now time.Time) (*PublishRequest, push.Message, error) {
	var req PublishRequest
	var m push.Message
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, m, fmt.Errorf("request body: %v", jsonerr.Describe(err))
	}
	if dec.More() {
		return nil, m, errors.New("request body: more than one JSON value")
	}
	if err := checkID("app", req.App, true); err != nil {
		return nil, m, err
	}
	switch {
	case req.Device != "" && req.Devices != nil:
		return nil, m, errors.New(`devices: give device or devices, not both`)
	case req.Devices != nil:
		if len(req.Devices) == 0 {
			return nil, m, errors.New("devices: must not be empty")
		}
		if len(req.Devices) > maxPublishDevices {
			return nil, m, fmt.Errorf("devices: %d devices, at most %d in one request", len(req.Devices), maxPublishDevices)
		}
		seen := make(map[string]int, len(req.Devices))
		for i, d := range req.Devices {
			f := fmt.Sprintf("devices[%d]", i)
			if err := checkID(f, d, false); err != nil {
				return nil, m, err
			}
			if j, dup := seen[d]; dup {
				return nil, m, fmt.Errorf("%s: %s is already devices[%d]", f, quote(d), j)
			}
			seen[d] = i
		}
	default:
		if err := checkID("device", req.Device, false); err != nil {
			return nil, m, err
		}
	}
	if err := checkID("topic", req.Topic, false); err != nil {
		return nil, m, err
	}
	if err := checkID("message_id", req.MessageID, true); err != nil {
		return nil, m, err
	}
	switch {
	case req.Body != nil && req.BodyBase64 != nil:
		return nil, m, errors.New("body_base64: give body or body_base64, not both")
	case req.Body != nil:
		m.Body = []byte(*req.Body)
	case req.BodyBase64 != nil:
		b, err := base64.StdEncoding.DecodeString(*req.BodyBase64)
		if err != nil {
			return nil, m, fmt.Errorf("body_base64: not standard base64: %v", err)
		}
		m.Body = b
	}
	if int64(len(m.Body)) > h.maxLen {
		f := "body"
		if req.BodyBase64 != nil {
			f = "body_base64"
		}
		return nil, m, fmt.Errorf("%s: %d bytes is over push.max_bytes (%s, one device's log)", f, len(m.Body), h.cfg.MaxBytes)
	}
	ttl := h.cfg.DefaultTTL.D()
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		switch {
		case err != nil:
			return nil, m, fmt.Errorf("ttl: %s is not a duration like 60s or 24h", quote(req.TTL))
		case d <= 0:
			return nil, m, fmt.Errorf("ttl: %s must be positive", quote(req.TTL))
		case d > h.maxTTL:
			return nil, m, fmt.Errorf("ttl: %s is over push.max_ttl (%s)", quote(req.TTL), h.maxTTL)
		}
		ttl = d
	}
	m.Topic, m.MessageID = req.Topic, req.MessageID
	m.Expires = now.Add(ttl).UnixMilli()
	return &req, m, nil
}

// checkID bounds an id that becomes a map key or a PUSH header value.
func checkID(field, v string, mayBeEmpty bool) error {
	if v == "" && !mayBeEmpty {
		return fmt.Errorf("%s: must not be empty", field)
	}
	if len(v) > maxPushIDLen {
		return fmt.Errorf("%s: %d bytes, at most %d", field, len(v), maxPushIDLen)
	}
	return nil
}

func writeJSONStatus(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing left to tell it
}
