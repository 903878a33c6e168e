package launcher

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unicode"
)

// Host is a machine that runs ranks: Open MPI's host list and hostfile
// model. Slots is how many ranks it takes before it is oversubscribed;
// MaxSlots, when not zero, is a hard limit even with Oversubscribe.
type Host struct {
	Name     string
	Slots    int
	MaxSlots int
}

// ParseHostList parses mpirun's -H syntax: "h1,h2:4,h3" (one slot when no
// count is given).
func ParseHostList(s string) ([]Host, error) {
	var hs []Host
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, usageError("-H %q: empty host name", s)
		}
		name, n, hasN := strings.Cut(item, ":")
		if err := checkHostName(name); err != nil {
			return nil, usageError("-H %q: %v", s, err)
		}
		h := Host{Name: name, Slots: 1}
		if hasN {
			v, err := strconv.Atoi(n)
			if err != nil || v < 1 {
				return nil, usageError("-H %q: slot count %q of host %q is not a positive integer", s, n, name)
			}
			h.Slots = v
		}
		hs = append(hs, h)
	}
	return hs, nil
}

// ParseHostfile reads a hostfile in Open MPI's format: one host per line,
// "NAME [slots=N] [max_slots=M]", "#" comments and blank lines ignored.
func ParseHostfile(path string) ([]Host, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, usageError("--hostfile: %v", err)
	}
	defer f.Close()
	var hs []Host
	sc := bufio.NewScanner(f)
	for ln := 1; sc.Scan(); ln++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if err := checkHostName(fields[0]); err != nil {
			return nil, usageError("--hostfile %s line %d: %v", path, ln, err)
		}
		h := Host{Name: fields[0], Slots: 1}
		for _, kv := range fields[1:] {
			k, v, ok := strings.Cut(kv, "=")
			switch k {
			case "slots", "count", "cpu", "max_slots", "max-slots":
			default:
				return nil, usageError("--hostfile %s line %d: unknown key %q (want slots= or max_slots=)", path, ln, k)
			}
			n, err := strconv.Atoi(v)
			if !ok || err != nil || n < 1 {
				return nil, usageError("--hostfile %s line %d: %q is not %s=POSITIVE_INTEGER", path, ln, kv, k)
			}
			switch k {
			case "slots", "count", "cpu":
				h.Slots = n
			default:
				h.MaxSlots = n
			}
		}
		if h.MaxSlots > 0 && h.MaxSlots < h.Slots {
			return nil, usageError("--hostfile %s line %d: max_slots=%d is less than slots=%d", path, ln, h.MaxSlots, h.Slots)
		}
		hs = append(hs, h)
	}
	if err := sc.Err(); err != nil {
		return nil, usageError("--hostfile %s: %v", path, err)
	}
	if len(hs) == 0 {
		return nil, usageError("--hostfile %s names no host", path)
	}
	return hs, nil
}

// Map places np ranks on hosts: by slot (fill each host's slots in order,
// Open MPI's default) or by node (one rank per host in turn). It returns the
// host index of every rank. Placing more ranks than slots needs
// oversubscribe, and never goes past a host's MaxSlots.
func Map(hosts []Host, np int, byNode, oversubscribe bool) ([]int, error) {
	total, hard := 0, 0
	for _, h := range hosts {
		total += h.Slots
		if h.MaxSlots > 0 {
			hard += h.MaxSlots
		} else {
			hard = -1 << 62
		}
	}
	if np > total && !oversubscribe {
		return nil, &ExitError{Code: ExitUsage, Rank: -1, Msg: fmt.Sprintf("there are not enough slots available in the system to satisfy the %d slots that were requested by the application; "+
			"%d slots are available: request fewer ranks, add hosts or slots, or pass --oversubscribe", np, total)}
	}
	if hard > 0 && np > hard {
		return nil, &ExitError{Code: ExitUsage, Rank: -1, Msg: fmt.Sprintf("%d ranks requested but the hosts' max_slots allow only %d", np, hard)}
	}
	place := make([]int, 0, np)
	count := make([]int, len(hosts))
	fits := func(i int, limit func(Host) int) bool { return count[i] < limit(hosts[i]) }
	slots := func(h Host) int { return h.Slots }
	maxs := func(h Host) int {
		if h.MaxSlots > 0 {
			return h.MaxSlots
		}
		return int(^uint(0) >> 1)
	}
	// First within slots, then (oversubscribing) one more rank per host in
	// turn, up to max_slots.
	for phase, limit := range []func(Host) int{slots, maxs} {
		for len(place) < np {
			added := false
			for i := range hosts {
				for fits(i, limit) && len(place) < np {
					place = append(place, i)
					count[i]++
					added = true
					if byNode || phase == 1 {
						break
					}
				}
			}
			if !added {
				break
			}
		}
	}
	if !byNode {
		// By slot: ranks of one host are consecutive.
		sortStable(place)
	}
	return place, nil
}

func sortStable(p []int) {
	for i := 1; i < len(p); i++ {
		for j := i; j > 0 && p[j-1] > p[j]; j-- {
			p[j-1], p[j] = p[j], p[j-1]
		}
	}
}

// checkHostName rejects a host name that the launch agent would not take
// as one: empty, starting with "-" (ssh would read an option) or holding
// white space or control characters (the agent's command line is split on
// spaces).
func checkHostName(name string) error {
	switch {
	case name == "":
		return errors.New("empty host name")
	case strings.HasPrefix(name, "-"):
		return fmt.Errorf("host name %q starts with \"-\"", name)
	case strings.IndexFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return fmt.Errorf("host name %q holds white space or a control character", name)
	}
	return nil
}

// isLocal reports whether a host name means this machine.
func isLocal(name string) bool {
	if name == "localhost" || name == "127.0.0.1" || name == "::1" {
		return true
	}
	h, err := os.Hostname()
	return err == nil && (name == h || strings.HasPrefix(h, name+"."))
}
