package launcher

import (
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
