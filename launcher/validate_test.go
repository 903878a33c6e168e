package launcher

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// TestTransportExport: -x DECORUN_TRANSPORT=V is the job's transport for
// every rank, over --transport; a bare -x DECORUN_TRANSPORT takes the
// launcher's value, and changes nothing when that is unset; a bad value is
// a usage error naming the variable.
func TestTransportExport(t *testing.T) {
	for _, tt := range []struct {
		env       string // launcher's DECORUN_TRANSPORT; "-" unset
		flag      string
		exports   []string
		want, err string
	}{
		{"-", "nats", []string{"DECORUN_TRANSPORT=tcp"}, "tcp", ""},
		{"-", "nats", []string{"DECORUN_TRANSPORT"}, "nats", ""},
		{"shm", "nats", []string{"DECORUN_TRANSPORT"}, "shm", ""},
		{"-", "", []string{"OTHER=1", "DECORUN_TRANSPORT=auto"}, "auto", ""},
		{"-", "tcp", []string{"DECORUN_TRANSPORT=bogus"}, "", `-x: jobenv: DECORUN_TRANSPORT="bogus": want auto, nats, shm or tcp`},
		{"-", "udp", nil, "", `--transport (or DECORUN_TRANSPORT) must be auto, nats, shm or tcp, got "udp"`},
	} {
		if tt.env == "-" {
			t.Setenv("DECORUN_TRANSPORT", "") // restored at the end of the test
			os.Unsetenv("DECORUN_TRANSPORT")
		} else {
			t.Setenv("DECORUN_TRANSPORT", tt.env)
		}
		cfg := Config{NP: 1, Program: "true", Transport: tt.flag, Env: tt.exports}
		err := cfg.validate()
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%+v: error %v; want one containing %q", tt, err, tt.err)
		case tt.err == "" && err != nil:
			t.Errorf("%+v: %v", tt, err)
		case tt.err == "" && cfg.Transport != tt.want:
			t.Errorf("%+v: transport %q; want %q", tt, cfg.Transport, tt.want)
		}
	}
}

// TestTCPEncryptExport: -x DECORUN_TCP_ENCRYPT=false turns the encryption
// of direct TCP off for every rank (=true back on, over Config.TCPPlain);
// a bad value is a usage error naming the variable.
func TestTCPEncryptExport(t *testing.T) {
	for _, tt := range []struct {
		plain   bool
		exports []string
		want    bool
		err     string
	}{
		{false, []string{"DECORUN_TCP_ENCRYPT=false"}, true, ""},
		{true, []string{"DECORUN_TCP_ENCRYPT=true"}, false, ""},
		{true, nil, true, ""},
		{false, []string{"DECORUN_TCP_ENCRYPT=sometimes"}, false, `-x: jobenv: DECORUN_TCP_ENCRYPT="sometimes": want true or false`},
	} {
		cfg := Config{NP: 1, Program: "true", TCPPlain: tt.plain, Env: tt.exports}
		err := cfg.validate()
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%+v: error %v; want one containing %q", tt, err, tt.err)
		case tt.err == "" && err != nil:
			t.Errorf("%+v: %v", tt, err)
		case tt.err == "" && cfg.TCPPlain != tt.want:
			t.Errorf("%+v: TCPPlain %v; want %v", tt, cfg.TCPPlain, tt.want)
		}
	}
}

// TestTraceFilesChecked: a --trace or --report-json file that could not be
// written when the job ends is a usage error before the job runs, naming
// the flag; while tracing, ranks being stopped get TraceKillGrace.
func TestTraceFilesChecked(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		cfg Config
		err string
	}{
		{Config{Trace: dir + "/no/such/t.json"}, "--trace " + dir + "/no/such/t.json: directory " + dir + "/no/such does not exist"},
		{Config{ReportJSON: dir}, "--report-json " + dir + ": is a directory"},
		{Config{Trace: dir + "/t.html", Report: true, ReportJSON: dir + "/r.json"}, ""},
	} {
		cfg := tt.cfg
		cfg.NP, cfg.Program = 1, "true"
		err := cfg.validate()
		var ee *ExitError
		switch {
		case tt.err != "" && (err == nil || err.Error() != tt.err || !errors.As(err, &ee) || ee.Code != ExitUsage):
			t.Errorf("%+v: error %v; want usage error %q", tt.cfg, err, tt.err)
		case tt.err == "" && err != nil:
			t.Errorf("%+v: %v", tt.cfg, err)
		case tt.err == "" && cfg.KillGrace != TraceKillGrace:
			t.Errorf("%+v: kill grace %v; want %v while tracing", tt.cfg, cfg.KillGrace, TraceKillGrace)
		}
	}
}
