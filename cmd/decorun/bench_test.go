package main

import (
	"slices"
	"strings"
	"testing"
)

func TestBenchArgs(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"latency --json", "--json -- latency"},
		{"--json latency", "--json -- latency"},
		{"latency -n 4 bw --sizes 8,1K --baseline", "-n 4 --sizes 8,1K --baseline -- latency bw"},
		{"latency --iters=5", "--iters=5 -- latency"},
		{"--help", "--help --"},
		{"all -- -x", "-- all -x"},
	} {
		got := benchArgs(strings.Fields(tc.in))
		want := append([]string{"decorun bench"}, strings.Fields(tc.want)...)
		if !slices.Equal(got, want) {
			t.Errorf("benchArgs(%q) = %q; want %q", tc.in, got, want)
		}
	}
}

func TestBenchUsage(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"bench"}, "no benchmark named"},
		{[]string{"bench", "pingpong"}, `unknown benchmark "pingpong"`},
		{[]string{"bench", "latency", "-n", "1"}, "need -n 2 or more"},
		{[]string{"bench", "latency", "--sizes", "1x"}, "--sizes: bad size"},
		{[]string{"bench", "latency", "--bogus"}, "flag provided but not defined"},
	} {
		code, _, stderr := exitCode(t, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.stderr) {
			t.Errorf("decorun %q: code %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.stderr)
		}
	}
	code, out, _ := exitCode(t, "bench", "--help")
	if code != 0 || !strings.Contains(out, "--baseline") || !strings.Contains(out, "startup") {
		t.Errorf("decorun bench --help: code %d, output %q", code, out)
	}
}
