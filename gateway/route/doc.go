// Package route decides, for each request, which upstream cluster serves it: route
// matching, sticky weighted splits, switches, tester overrides, fallback order, live changes
// through an admin API, and the metrics that make every decision visible.
//
// The gateway holds one *Router. Per request it calls Router.Load once and keeps that
// *Table for the whole request (fallbacks included), so a change made meanwhile never
// mixes two tables in one request. A Table is immutable after it is published; every
// change builds a new one and swaps it atomically.
//
// docs/routing.md is the user-facing contract: matching precedence, the sticky hash
// (so another tool can predict a device's side), switches and fallback.
package route
