package loadtest

import (
	"fmt"
	"math"
	"net/netip"

	"github.com/mgw-project/mgw/loadtest/observe"
	"github.com/mgw-project/mgw/loadtest/report"
	"github.com/mgw-project/mgw/loadtest/worker"
)

// GatewayFDMargin is what the gateway keeps of its open-file limit for listeners, its
// epoll fds, backend connections and logs: the connections it can hold are the rest.
const GatewayFDMargin = 512

// MaxGatewayProcs bounds the gateway processes compare starts for one engine: past it, the
// connections are more than this box is for, and the run says so with a projection.
const MaxGatewayProcs = 64

// spreadSigmas is the headroom of processes sharing a listener. SO_REUSEPORT hands each new
// connection to a process chosen by a hash of its addresses, not in turn: a process's count
// is binomial around its share, and one planned for its share plus this many standard
// deviations practically never meets its open-file limit.
const spreadSigmas = 6

// gatewayCapacity is how many connections procs gateway processes, each allowed nofile
// open files, can be planned to hold together. One process holds all but GatewayFDMargin;
// processes sharing a listener hold less each (see spreadSigmas).
func gatewayCapacity(nofile uint64, procs int) int {
	c := int(min(nofile, 1<<40)) - GatewayFDMargin
	if c < 1 {
		return 0
	}
	if procs <= 1 {
		return c
	}
	// The largest share s with s + spreadSigmas*sqrt(s) <= c (the binomial's deviation is
	// at most sqrt(s)).
	r := (-spreadSigmas + math.Sqrt(spreadSigmas*spreadSigmas+4*float64(c))) / 2
	return procs * int(r*r)
}

// gatewayProcs is how many gateway processes, each allowed nofile open files, hold conns
// connections: one when they fit it, otherwise the fewest that hold them with headroom for
// the uneven spread, split as client workers are. At most MaxGatewayProcs.
func gatewayProcs(conns int, nofile uint64) (int, error) {
	one := gatewayCapacity(nofile, 1)
	if one < 1 {
		return 0, fmt.Errorf("gateway open-file limit %d leaves no room for connections (%d kept for listeners, upstream and epoll)", nofile, GatewayFDMargin)
	}
	if conns <= one {
		return 1, nil
	}
	per := gatewayCapacity(nofile, 2) / 2
	plan, err := worker.Split(conns, per, 2)
	if err != nil {
		return 0, fmt.Errorf("gateway open-file limit %d: %w", nofile, err)
	}
	return min(len(plan.PerWorker), MaxGatewayProcs), nil
}

// autoPerAddr is how many connections an automatically chosen source address carries.
const autoPerAddr = 4000

// portSlack leaves ephemeral ports for everything else on the box.
const portSlack = 0.9

// planLimits decides how many connections the box allows and how to spread them: the
// client's open-file limit sets connections per worker, the gateway processes' (gwProcs of
// them, each allowed gwNofile files) cap N, and the ephemeral port range caps connections
// per source address. Every cap is written down.
func planLimits(o *Options, gwNofile uint64, gwProcs int) (worker.Plan, report.Limits, []netip.Addr, error) {
	lim := report.Limits{ClientNofile: observe.OwnNofile(), GatewayNofile: gwNofile, RequestedConns: o.Conns}
	if gwProcs > 1 {
		lim.GatewayProcs = gwProcs
	}
	lo, hi := observe.PortRange()
	lim.PortRange = [2]int{lo, hi}
	n := o.Conns
	if gwNofile > 0 {
		gwMax := gatewayCapacity(gwNofile, gwProcs)
		if gwMax < 1 {
			return worker.Plan{}, lim, nil, fmt.Errorf("gateway open-file limit %d leaves no room for connections", gwNofile)
		}
		if n > gwMax && gwProcs > 1 {
			lim.Notes = append(lim.Notes, fmt.Sprintf("%d gateway processes with an open-file limit of %d each can hold about %d connections (SO_REUSEPORT spreads them unevenly), so this run holds %d of the %d asked; figures at %d are a projection",
				gwProcs, gwNofile, gwMax, gwMax, o.Conns, o.Conns))
			n = gwMax
		} else if n > gwMax {
			lim.Notes = append(lim.Notes, fmt.Sprintf("gateway open-file limit is %d: it can hold about %d connections, so this run holds %d of the %d asked; figures at %d are a projection",
				gwNofile, gwMax, gwMax, o.Conns, o.Conns))
			n = gwMax
		}
	}
	per := int(lim.ClientNofile) - worker.FDMargin
	if lim.ClientNofile == 0 || lim.ClientNofile > 1<<30 {
		per = 1 << 20
	}
	why := fmt.Sprintf("client open-file limit is %d", lim.ClientNofile)
	if o.PerWorker > 0 && o.PerWorker < per {
		per = o.PerWorker
		why = fmt.Sprintf("-per-worker %d", o.PerWorker) // the user's cap, not the limit's
	}
	plan, err := worker.Split(n, per, o.Workers)
	if err != nil {
		return plan, lim, nil, err
	}
	if len(plan.PerWorker) > 1 {
		lim.Notes = append(lim.Notes, fmt.Sprintf("%s: %d connections split across %d worker processes (at most %d each)",
			why, n, len(plan.PerWorker), per))
	}
	ports := int(float64(hi-lo+1) * portSlack)
	// connect() without bind searches ports of one parity first (Linux 4.6+): past half the
	// range each connect scans far longer, and a ramp crawls. On loopback, spread before
	// that, and thinly: bind(port 0) scans for a free port too, slower the fuller the address.
	fast := int(float64(hi-lo+1) / 2 * portSlack)
	srcs := o.Sources
	if len(srcs) == 0 && n > fast {
		if o.SourcesAuto && isLoopback(o.Target) {
			srcs = worker.LoopbackRange(n, min(fast, autoPerAddr), o.SourceSkip)
			lim.Notes = append(lim.Notes, fmt.Sprintf("one source address has %d ephemeral ports: binding across %s-%s", hi-lo+1, srcs[0], srcs[len(srcs)-1]))
		}
	}
	addrs := max(1, len(srcs))
	if n > addrs*ports {
		capN := addrs * ports
		lim.Notes = append(lim.Notes, fmt.Sprintf("%d source address(es) x %d usable ephemeral ports (%d-%d) allow %d connections: running %d; give -src a range (e.g. 127.0.0.2-127.0.0.50)",
			addrs, ports, lo, hi, capN, capN))
		n = capN
		if plan, err = worker.Split(n, per, o.Workers); err != nil {
			return plan, lim, nil, err
		}
	}
	plan.Requested = o.Conns
	lim.RunConns = n
	lim.PerWorkerConns = plan.PerWorker[0]
	return plan, lim, srcs, nil
}
