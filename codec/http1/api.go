package http1

// IsAPIRequest reports whether the request calls an API (POST /api/<op>, or any request
// with an Operation-Type field) rather than asking for a plain reverse proxy: the gateway
// buffers an API request's body for the filters and the backend mapping, and streams a
// proxied one.
func IsAPIRequest(h *RequestHead) bool {
	if apiOperation(h.Method, h.Target) != "" {
		return true
	}
	_, ok := h.Header.Get("operation-type")
	return ok
}

// Operation is the API a request calls: <op> for POST /api/<op> (op non-empty and
// without '/', query ignored, also in absolute-form), else its Operation-Type field, else
// "".
func Operation(h *RequestHead) string {
	if op := apiOperation(h.Method, h.Target); op != "" {
		return op
	}
	return h.Header.Value("operation-type")
}
