package jobenv

import (
	"slices"
	"strings"
	"testing"
)

func TestRanks(t *testing.T) {
	for _, tc := range []struct {
		rs []int
		s  string
	}{{nil, ""}, {[]int{0}, "0"}, {[]int{0, 1, 2, 3}, "0-3"}, {[]int{0, 2, 4, 5, 6, 9}, "0,2,4-6,9"}} {
		if got := FormatRanks(tc.rs); got != tc.s {
			t.Errorf("FormatRanks(%v) = %q; want %q", tc.rs, got, tc.s)
		}
		got, err := ParseRanks(tc.s, 10)
		if err != nil || !slices.Equal(got, tc.rs) {
			t.Errorf("ParseRanks(%q) = %v, %v; want %v", tc.s, got, err, tc.rs)
		}
	}
	for _, bad := range []string{"x", "1-", "-1", "3-1", "10", "0,,1", "0-10"} {
		if _, err := ParseRanks(bad, 10); err == nil {
			t.Errorf("ParseRanks(%q) succeeded; want an error", bad)
		}
	}
}

func TestParseTransport(t *testing.T) {
	for _, ok := range []string{"", "auto", "nats", "shm", "tcp"} {
		if _, err := ParseTransport(ok); err != nil {
			t.Errorf("ParseTransport(%q) = %v", ok, err)
		}
	}
	if _, err := ParseTransport("udp"); err == nil || !strings.Contains(err.Error(), "want auto, nats, shm or tcp") {
		t.Errorf("ParseTransport(udp) = %v; want an error listing the paths", err)
	}
}

func TestFromEnvTransport(t *testing.T) {
	t.Setenv(EnvRank, "1")
	t.Setenv(EnvSize, "4")
	t.Setenv(EnvURL, "nats://x")
	t.Setenv(EnvTransport, "shm")
	t.Setenv(EnvHostRanks, "0-1,3")
	t.Setenv(EnvTCPAddr, "10.0.0.7")
	j, ok, err := FromEnv()
	if err != nil || !ok || j.Transport != "shm" || !slices.Equal(j.HostRanks, []int{0, 1, 3}) || j.TCPAddr != "10.0.0.7" {
		t.Fatalf("FromEnv() = %+v, %v, %v", j, ok, err)
	}
	t.Setenv(EnvHostRanks, "0-9")
	if _, _, err := FromEnv(); err == nil {
		t.Error("FromEnv with host ranks out of range succeeded")
	}
	t.Setenv(EnvHostRanks, "0")
	t.Setenv(EnvCPUs, "2-3,6")
	if j, _, err := FromEnv(); err != nil || !slices.Equal(j.CPUs, []int{2, 3, 6}) {
		t.Errorf("FromEnv with %s=2-3,6: CPUs %v, %v", EnvCPUs, j.CPUs, err)
	}
	t.Setenv(EnvCPUs, "3-1")
	if _, _, err := FromEnv(); err == nil || !strings.Contains(err.Error(), EnvCPUs) {
		t.Errorf("FromEnv with %s=3-1: %v; want an error naming it", EnvCPUs, err)
	}
	t.Setenv(EnvCPUs, "")
	t.Setenv(EnvTransport, "carrier-pigeon")
	if _, _, err := FromEnv(); err == nil {
		t.Error("FromEnv with a bad transport succeeded")
	}
}

// TestHeartbeatWildcard: the launcher's subscription matches every agent's
// heartbeat subject, whatever the host's name (a NATS '*' matches one
// token).
func TestHeartbeatWildcard(t *testing.T) {
	w := strings.Split(HeartbeatWildcard("decorun.j1"), ".")
	for _, host := range []string{"node1", "node1.example.org", "a*b", "x y", "dc12h1"} {
		s := strings.Split(HeartbeatSubject("decorun.j1", host), ".")
		ok := len(s) == len(w)
		for i := 0; ok && i < len(w); i++ {
			ok = w[i] == "*" || w[i] == s[i]
		}
		if !ok {
			t.Errorf("%q does not match %q (host %q)", HeartbeatWildcard("decorun.j1"), HeartbeatSubject("decorun.j1", host), host)
		}
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"nats://user:s3cret@host:4222", "nats://user:xxxxx@host:4222"},
		{"nats://tok3n@host", "nats://xxxxx@host"},
		{"nats://host:4222", "nats://host:4222"},
		{`parse "nats://u:p@ss@h:x": invalid port`, `parse "nats://u:xxxxx@h:x": invalid port`},
		{"nats://a:pw1@h1,tls://b:pw2@h2/x", "nats://a:xxxxx@h1,tls://b:xxxxx@h2/x"},
		{"connect to nats://a:b@h failed: dial user@example", "connect to nats://a:xxxxx@h failed: dial user@example"},
		{"mail me@x.org", "mail me@x.org"},
	} {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

// TestJobKeys: the keys for shared-memory names, their authentication and
// TCP are unrelated, change with the job's secret key and not only with
// what others can see (id, prefix, NATS credentials); without a job key
// there is no TCP key; the key reaches the ranks through Environ and
// FromEnv.
func TestJobKeys(t *testing.T) {
	a := Job{ID: "j", Prefix: "decorun.j", Secret: "tok", JobKey: "k1"}
	b := a
	b.JobKey = "k2"
	na, aa := a.SHMKeys()
	nb, ab := b.SHMKeys()
	keys := map[string]string{"name": string(na), "auth": string(aa), "tcp": string(a.TCPKey()),
		"name, other job key": string(nb), "auth, other job key": string(ab), "tcp, other job key": string(b.TCPKey())}
	seen := map[string]string{}
	for what, k := range keys {
		if len(k) != 32 {
			t.Errorf("%s key has %d bytes", what, len(k))
		}
		if other, dup := seen[k]; dup {
			t.Errorf("the %s and %s keys are equal", what, other)
		}
		seen[k] = what
	}
	if k := (Job{ID: "j", Prefix: "decorun.j", Secret: "tok"}).TCPKey(); k != nil {
		t.Errorf("TCPKey without a job key = %x; want nil", k)
	}
	t.Setenv(EnvRank, "0")
	t.Setenv(EnvSize, "1")
	for _, kv := range a.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	if j, _, err := FromEnv(); err != nil || j.JobKey != "k1" {
		t.Errorf("FromEnv: job key %q, %v; want k1", j.JobKey, err)
	}
}

// TestTCPEncrypt: DECORUN_TCP_ENCRYPT=false turns encryption off, unset
// or true leaves it on, anything else is an error naming the variable;
// Environ always hands the setting on, so a rank never takes its host's.
func TestTCPEncrypt(t *testing.T) {
	t.Setenv(EnvRank, "0")
	t.Setenv(EnvSize, "2")
	t.Setenv(EnvURL, "tls://x:4222")
	for _, tc := range []struct {
		v     string
		plain bool
	}{{"", false}, {"true", false}, {"1", false}, {"false", true}, {"0", true}, {"FALSE", true}} {
		t.Setenv(EnvTCPEncrypt, tc.v)
		j, _, err := FromEnv()
		if err != nil || j.TCPPlain != tc.plain {
			t.Errorf("%s=%q: TCPPlain %v, %v; want %v", EnvTCPEncrypt, tc.v, j.TCPPlain, err, tc.plain)
		}
		if got := slices.Contains(j.Environ(), EnvTCPEncrypt+"="+map[bool]string{false: "true", true: "false"}[tc.plain]); !got {
			t.Errorf("%s=%q: Environ() = %q lacks the setting", EnvTCPEncrypt, tc.v, j.Environ())
		}
		if FromList(j.Environ()).TCPPlain != tc.plain {
			t.Errorf("%s=%q: FromList(Environ()) changed the setting", EnvTCPEncrypt, tc.v)
		}
	}
	t.Setenv(EnvTCPEncrypt, "no-thanks")
	if _, _, err := FromEnv(); err == nil || !strings.Contains(err.Error(), EnvTCPEncrypt+`="no-thanks": want true or false`) {
		t.Errorf("FromEnv with %s=no-thanks: %v; want an error naming the variable", EnvTCPEncrypt, err)
	}
}
