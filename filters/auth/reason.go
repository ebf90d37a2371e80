package auth

import "github.com/mgw-project/mgw/codec"

// reason is why a request was refused; it labels mgw_auth_failures_total and picks the
// answer. The body is a fixed phrase: it never echoes a header, a key or a signature.
type reason uint8

const (
	ok reason = iota
	missingAppID
	missingDeviceID
	missingTimestamp
	badTimestamp
	staleTimestamp
	futureTimestamp
	missingSign
	unknownApp
	badSign
	missingNonce
	replayedNonce
	identityMismatch
	noHello
	apiNotAllowed
	nonceStoreFull
	numReasons
)

var reasonInfo = [numReasons]struct {
	label  string
	status int
	code   string
	body   string
}{
	ok:               {"ok", 200, "", ""},
	missingAppID:     {"missing_app_id", 401, codec.ErrUnauthorized, "missing app-id"},
	missingDeviceID:  {"missing_device_id", 401, codec.ErrUnauthorized, "missing device-id"},
	missingTimestamp: {"missing_timestamp", 401, codec.ErrUnauthorized, "missing timestamp"},
	badTimestamp:     {"bad_timestamp", 401, codec.ErrUnauthorized, "timestamp is not Unix milliseconds"},
	staleTimestamp:   {"stale_timestamp", 401, codec.ErrUnauthorized, "timestamp outside the allowed window"},
	futureTimestamp:  {"future_timestamp", 401, codec.ErrUnauthorized, "timestamp outside the allowed window"},
	missingSign:      {"missing_sign", 401, codec.ErrUnauthorized, "missing sign"},
	// An unknown app gets the same answer as a bad signature: no app-id enumeration.
	unknownApp:       {"unknown_app", 401, codec.ErrUnauthorized, "bad signature"},
	badSign:          {"bad_sign", 401, codec.ErrUnauthorized, "bad signature"},
	missingNonce:     {"missing_nonce", 401, codec.ErrUnauthorized, "missing nonce"},
	replayedNonce:    {"replayed_nonce", 401, codec.ErrUnauthorized, "replayed nonce"},
	identityMismatch: {"identity_mismatch", 401, codec.ErrUnauthorized, "app-id or device-id differs from the connection's HELLO"},
	noHello:          {"no_hello", 401, codec.ErrUnauthorized, "HELLO required before REQUEST"},
	apiNotAllowed:    {"api_not_allowed", 403, codec.ErrForbidden, "this app may not call this API"},
	// Fail closed while the replay store is full: the gateway cannot decide, so it says
	// it is unavailable rather than blaming the client's credentials.
	nonceStoreFull: {"nonce_store_full", 503, codec.ErrUnavailable, "replay protection unavailable, retry later"},
}

func (r reason) String() string { return reasonInfo[r].label }

func (r reason) response() *codec.Response {
	in := &reasonInfo[r]
	return codec.ErrorResponse(in.status, in.code, in.body)
}
