package loadtest

import (
	"fmt"
	"net/netip"

	"github.com/mgw-project/mgw/loadtest/observe"
	"github.com/mgw-project/mgw/loadtest/report"
	"github.com/mgw-project/mgw/loadtest/worker"
)

// GatewayFDMargin is what the gateway keeps of its open-file limit for listeners, its
// epoll fds, backend connections and logs: the connections it can hold are the rest.
const GatewayFDMargin = 512

// autoPerAddr is how many connections an automatically chosen source address carries.
const autoPerAddr = 4000

// portSlack leaves ephemeral ports for everything else on the box.
const portSlack = 0.9

// planLimits decides how many connections the box allows and how to spread them: the
// client's open-file limit sets connections per worker, the gateway's caps N, and the
// ephemeral port range caps connections per source address. Every cap is written down.
func planLimits(o *Options, gwNofile uint64) (worker.Plan, report.Limits, []netip.Addr, error) {
	lim := report.Limits{ClientNofile: observe.OwnNofile(), GatewayNofile: gwNofile, RequestedConns: o.Conns}
	lo, hi := observe.PortRange()
	lim.PortRange = [2]int{lo, hi}
	n := o.Conns
	if gwNofile > 0 {
		gwMax := int(gwNofile) - GatewayFDMargin
		if gwMax < 1 {
			return worker.Plan{}, lim, nil, fmt.Errorf("gateway open-file limit %d leaves no room for connections", gwNofile)
		}
		if n > gwMax {
			lim.Notes = append(lim.Notes, fmt.Sprintf("gateway open-file limit is %d: it can hold about %d connections, so this run holds %d of the %d asked; figures at %d are a projection",
				gwNofile, gwMax, gwMax, o.Conns, o.Conns))
			n = gwMax
		}
	}
	per := int(lim.ClientNofile) - worker.FDMargin
	if lim.ClientNofile == 0 || lim.ClientNofile > 1<<30 {
		per = 1 << 20
	}
	if o.PerWorker > 0 && o.PerWorker < per {
		per = o.PerWorker
	}
	plan, err := worker.Split(n, per, o.Workers)
	if err != nil {
		return plan, lim, nil, err
	}
	if len(plan.PerWorker) > 1 {
		lim.Notes = append(lim.Notes, fmt.Sprintf("client open-file limit is %d: %d connections split across %d worker processes (at most %d each)",
			lim.ClientNofile, n, len(plan.PerWorker), per))
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
