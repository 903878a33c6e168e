package proc

import (
	"errors"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/decorun/decorun/internal/jobenv"
)

func TestShare(t *testing.T) {
	cpus := []int{0, 1, 2, 3, 4, 5, 6, 7}
	for _, c := range []struct {
		cpus        []int
		local, size int
		want        []int
	}{
		{cpus[:2], 0, 2, []int{0}},
		{cpus[:2], 1, 2, []int{1}},
		{cpus[:1], 0, 1, []int{0}},
		{cpus, 0, 3, []int{0, 1, 2}}, // 8 over 3: 3, 3, 2
		{cpus, 1, 3, []int{3, 4, 5}},
		{cpus, 2, 3, []int{6, 7}},
		{cpus, 1, 2, []int{4, 5, 6, 7}},
		{[]int{2, 5, 9}, 2, 3, []int{9}}, // the allowed CPUs, not 0..n-1
		{cpus[:2], 0, 3, nil},            // more ranks than CPUs: unbound
		{cpus[:2], 2, 2, nil},            // not one of the ranks
		{cpus[:2], -1, 2, nil},
		{nil, 0, 1, nil},
		{cpus, 0, 0, nil},
	} {
		var cores [][]int // one thread per core: Deal's runs of CPUs
		for _, cpu := range c.cpus {
			cores = append(cores, []int{cpu})
		}
		if got := Deal(cores, c.local, c.size); !slices.Equal(got, c.want) {
			t.Errorf("Deal(%v, %d, %d) = %v; want %v", c.cpus, c.local, c.size, got, c.want)
		}
	}
}

// TestDeal: ranks no more than the cores get whole cores, never a thread
// of another rank's core; more ranks than cores get threads, a core's
// threads side by side.
func TestDeal(t *testing.T) {
	smt := [][]int{{0, 4}, {1, 5}, {2, 6}, {3, 7}} // 4 cores, 2 threads each, as Linux numbers them
	for _, c := range []struct {
		local, size int
		want        []int
	}{
		{0, 2, []int{0, 1, 4, 5}},
		{1, 2, []int{2, 3, 6, 7}},
		{0, 3, []int{0, 1, 4, 5}},
		{2, 3, []int{3, 7}},
		{3, 4, []int{3, 7}},
		{0, 8, []int{0}}, // more ranks than cores: threads
		{1, 8, []int{4}},
		{5, 8, []int{6}},
		{0, 6, []int{0, 4}},
		{5, 6, []int{7}},
		{0, 9, nil},
	} {
		if got := Deal(smt, c.local, c.size); !slices.Equal(got, c.want) {
			t.Errorf("Deal(4 cores of 2 threads, %d, %d) = %v; want %v", c.local, c.size, got, c.want)
		}
	}
	// This machine: its own CPUs, whatever its cores, each rank's share
	// disjoint from the others' and all of them used.
	cpus, err := Allowed()
	if err != nil {
		t.Fatal(err)
	}
	for size := 1; size <= len(cpus); size++ {
		var all []int
		for r := range size {
			all = append(all, Share(cpus, r, size)...)
		}
		slices.Sort(all)
		if !slices.Equal(all, cpus) {
			t.Errorf("Share of %v over %d ranks covers %v", cpus, size, all)
		}
	}
}

func TestBinding(t *testing.T) {
	allowed, err := Allowed()
	if err != nil {
		t.Fatal(err)
	}
	cores := CoresOf(allowed)
	cpus, add := Binding(cores, 0, 1, []string{"PATH=/bin"})
	want := []string{"DECORUN_CPUS=" + jobenv.FormatRanks(allowed), "GOMAXPROCS=" + strconv.Itoa(max(2, len(allowed)))}
	if !slices.Equal(cpus, allowed) || !slices.Equal(add, want) {
		t.Errorf("Binding(%v, 0, 1) = %v, %q; want all of them, %q", allowed, cpus, add, want)
	}
	cpus, add = Binding(cores, 0, 1, []string{"GOMAXPROCS=1"})
	if !slices.Equal(cpus, allowed) || !slices.Equal(add, want[:1]) {
		t.Errorf("Binding(%v, 0, 1, GOMAXPROCS set) = %v, %q; want the user's GOMAXPROCS kept", allowed, cpus, add)
	}
	if cpus, add = Binding(cores, 0, len(allowed)+1, nil); cpus != nil || add != nil {
		t.Errorf("Binding(%d CPUs, %d ranks) = %v, %q; want unbound", len(allowed), len(allowed)+1, cpus, add)
	}
}

// TestStartOn starts a real process bound to one CPU: the kernel reports
// that CPU alone for it, and the starting thread keeps its own mask.
func TestStartOn(t *testing.T) {
	runtime.LockOSThread() // StartOn's lock nests in this one: same thread before and after
	defer runtime.UnlockOSThread()
	before, err := Allowed()
	if err != nil {
		t.Fatal(err)
	}
	last := before[len(before)-1]
	cmd := exec.Command("/bin/sh", "-c", "grep Cpus_allowed_list /proc/self/status")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p, err := StartOn(cmd, []int{last})
	if err != nil {
		t.Fatalf("StartOn: %v", err)
	}
	var b strings.Builder
	buf := make([]byte, 256)
	for {
		n, err := out.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if st, err := p.Wait(); err != nil || st.Failed() {
		t.Fatalf("Wait = %v, %v", st, err)
	}
	if got, want := strings.Fields(b.String()), []string{"Cpus_allowed_list:", jobenv.FormatRanks([]int{last})}; !slices.Equal(got, want) {
		t.Errorf("the child says %q; want %q", got, want)
	}
	after, err := Allowed()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(after, before) {
		t.Errorf("the starting thread's CPUs are %v after StartOn; want %v, as before", after, before)
	}
	var be *BindError
	if _, err := StartOn(exec.Command("/bin/true"), []int{1 << 20}); !errors.As(err, &be) || err.Error() != "cannot bind to CPUs 1048576: no CPU 1048576" {
		t.Errorf("StartOn(CPU 1<<20) = %v; want a BindError naming the CPU", err)
	}
}
