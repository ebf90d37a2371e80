// Package fleet holds what lets several mgw instances act as one: fleet/etcdsource
// follows the routes, clusters and switches an etcd prefix holds, fleet/redisfleet keeps
// push logs, device presence, global rate limits and nonces in Redis. Only these engines
// hold shared state; the instances stay stateless peers (docs/fleet.md).
package fleet
