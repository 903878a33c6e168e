package launcher_test

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/decorun/decorun/internal/jobenv"
	"github.com/decorun/decorun/internal/proc"
	"github.com/decorun/decorun/launcher"
)

// bindScript prints, per rank: local rank|the CPUs the kernel lets it
// use|DECORUN_CPUS|GOMAXPROCS.
const bindScript = `echo "$DECORUN_LOCAL_RANK|$(grep Cpus_allowed_list /proc/self/status | cut -f2)|${DECORUN_CPUS-unset}|${GOMAXPROCS-unset}"`

// bindings runs cfg and returns each local rank's line fields.
func bindings(t *testing.T, cfg launcher.Config) map[int][]string {
	t.Helper()
	err, out, errOut := run(t, cfg)
	if err != nil {
		t.Fatalf("Run() = %v; stderr %q", err, errOut)
	}
	got := map[int][]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(l, "|")
		r, err := strconv.Atoi(f[0])
		if len(f) != 4 || err != nil {
			t.Fatalf("line %q: want local|cpus|DECORUN_CPUS|GOMAXPROCS", l)
		}
		got[r] = f[1:]
	}
	if len(got) != cfg.NP {
		t.Fatalf("output %q: want a line from each of %d ranks", out, cfg.NP)
	}
	return got
}

func allowed(t *testing.T) []int {
	t.Helper()
	cpus, err := proc.Allowed()
	if err != nil {
		t.Fatal(err)
	}
	return cpus
}

// unsetGOMAXPROCS clears GOMAXPROCS for the test, as t.Setenv restores.
func unsetGOMAXPROCS(t *testing.T) {
	t.Setenv("GOMAXPROCS", "")
	os.Unsetenv("GOMAXPROCS")
}

// TestBindCores: ranks that the CPUs hold are each bound to a share of
// their own, told so in DECORUN_CPUS, with GOMAXPROCS of at least 2.
func TestBindCores(t *testing.T) {
	unsetGOMAXPROCS(t)
	cpus := allowed(t)
	n := min(len(cpus), 4)
	got := bindings(t, sh(n, bindScript))
	for r := range n {
		share := proc.Share(cpus, r, n)
		want := []string{jobenv.FormatRanks(share), jobenv.FormatRanks(share), strconv.Itoa(max(2, len(share)))}
		if !slices.Equal(got[r], want) {
			t.Errorf("local rank %d of %d on CPUs %v: CPUs|DECORUN_CPUS|GOMAXPROCS = %q; want %q", r, n, cpus, got[r], want)
		}
	}
}

// TestBindKeepsGOMAXPROCS: a GOMAXPROCS the user exports is the ranks'.
func TestBindKeepsGOMAXPROCS(t *testing.T) {
	unsetGOMAXPROCS(t)
	cfg := sh(1, bindScript)
	cfg.Env = []string{"GOMAXPROCS=7"}
	if got := bindings(t, cfg)[0]; got[2] != "7" || got[1] == "unset" {
		t.Errorf("bound rank with GOMAXPROCS=7 exported: CPUs|DECORUN_CPUS|GOMAXPROCS = %q; want bound, GOMAXPROCS 7", got)
	}
}

// TestBindNone: --bind-to none, and ranks that outnumber the CPUs, run on
// every CPU the launcher may use, with neither variable set.
func TestBindNone(t *testing.T) {
	unsetGOMAXPROCS(t)
	cpus := allowed(t)
	all := jobenv.FormatRanks(cpus)
	none := sh(min(len(cpus), 4), bindScript)
	none.NoBind = true
	for name, cfg := range map[string]launcher.Config{"--bind-to none": none, "more ranks than CPUs": sh(len(cpus)+1, bindScript)} {
		if len(cpus)+1 > 16 && name != "--bind-to none" {
			continue
		}
		for r, got := range bindings(t, cfg) {
			if want := []string{all, "unset", "unset"}; !slices.Equal(got, want) {
				t.Errorf("%s: local rank %d: CPUs|DECORUN_CPUS|GOMAXPROCS = %q; want %q", name, r, got, want)
			}
		}
	}
}
