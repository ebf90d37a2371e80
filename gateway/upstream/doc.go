// Package upstream is the gateway's backend side: clusters of interchangeable HTTP/1.1
// hosts with load balancing, keep-alive pools, active health checks, passive outlier
// ejection and a per-cluster in-flight cap. The gateway calls a Cluster two ways:
//
//   - CallAsync (async.go) for an API call (MMTP or HTTP, mapped as mmtp.md "Backend
//     mapping" says, body buffered both ways), through the gateway's reactor
//     (Options.Engine): the request is written on a backend connection the engine serves,
//     the answer parsed as it arrives, and a callback gets the result; no goroutine waits
//     for the backend. Call makes the same exchange on the blocking client below, for a
//     caller that waits (CallAsync without an engine uses it);
//   - Forward for a plain reverse-proxied HTTP request (streamed both ways), on a request
//     task, with Call on the package's own blocking HTTP/1.1 client (h1pool.go,
//     h1request.go, h1response.go): the calling goroutine writes the request and reads
//     the answer, with no per-connection goroutines (why: h1pool.go).
//
// Only health probes use net/http. All fail with *Error; its Retriable tells the router
// whether a fallback cluster may be tried.
//
// Decisions, and why:
//
//   - Error statuses. NoHealthyHost, ConnectFailed and Overloaded answer 503 unavailable
//     (the spec's "no healthy backend, or overloaded": a backend that refuses connections
//     is down before any health check says so); Failed answers 502 upstream_error (the
//     backend failed; a router with fallbacks returns it only when they failed too);
//     Timeout answers 504 upstream_timeout; Invalid 400 bad_request.
//   - "Sent": once the request has a connection from its host's pool), bytes may reach the backend, so the request
//     counts as sent. This is conservative on purpose: a payment retried twice is worse
//     than one not retried. A pooled connection is checked before use (a non-blocking
//     peek): one the backend closed while idle is dropped and the call goes out on
//     another, unsent.
//   - Timeouts are per request (contexts), not Transport.ResponseHeaderTimeout, because a
//     route may override its cluster's timeout. Call's covers the whole exchange; Forward's
//     covers the time to the response head, after which only the caller's ctx bounds a
//     long download.
//   - Forward keeps the client's Host (as httputil.ReverseProxy does): backends route
//     virtual hosts and build links from it. Call sends the backend's own address, since
//     an API call names an operation, not a site.
//   - X-Forwarded-For: Forward and HTTP API calls append the client address to what the
//     client sent; MMTP calls replace it (MMTP has no proxy chain a header could describe).
//   - Outlier ejection counts connect errors, timeouts, broken responses and backend 5xx
//     answers; at most max(1, MaxEjectionPercent% of hosts) are ejected at once, so a
//     one-host cluster can be ejected and then fails fast with NoHealthyHost, which the
//     router's fallback handles. See outlier.go.
//   - A backend that closes an idle keep-alive connection just as a POST is written on
//     it produces a Failed, Sent error that is not retried: keep the cluster's
//     idle_conn_timeout below the backend's keep-alive timeout.
//
// Metrics (registered in Options.Metrics with GetOrCreate, so an old and a new Cluster of
// one name share series across a reload; in_flight moves by deltas, counting both; the
// two host gauges are registered by the gateway with RegisterHostGauges and read the
// cluster of the live config):
//
//	mgw_upstream_requests_total{cluster,host,outcome="ok|connect_error|timeout|error|canceled"}
//	mgw_upstream_ejections_total{cluster,host}
//	mgw_upstream_health_check_failures_total{cluster,host}
//	mgw_upstream_no_healthy_host_total{cluster}
//	mgw_upstream_overloaded_total{cluster}
//	mgw_upstream_in_flight{cluster}
//	mgw_upstream_hosts_healthy{cluster}   passing active checks (all hosts without checks)
//	mgw_upstream_hosts_ejected{cluster}
//	mgw_upstream_request_duration_seconds{cluster}   histogram, to the end of the body
package upstream
