package launcher

import (
	"slices"
	"strings"
	"testing"
)

// TestAgentCommand: --launch-agent is split into words as a shell would
// (quotes, backslashes, no expansions), {host} is replaced inside words or
// the host appended, and a bad template is a usage error naming the flag.
func TestAgentCommand(t *testing.T) {
	for _, tt := range []struct {
		template string
		want     []string
		err      string
	}{
		{"ip netns exec {host}", []string{"ip", "netns", "exec", "h2"}, ""},
		{"ssh  -p 22\t", []string{"ssh", "-p", "22", "h2"}, ""},
		{`ssh -o 'ProxyCommand=ssh -W %h:%p gw' {host}`, []string{"ssh", "-o", "ProxyCommand=ssh -W %h:%p gw", "h2"}, ""},
		{`sh -c "exec \"\$0\" \"\$@\" # {host}"`, []string{"sh", "-c", `exec "$0" "$@" # h2`}, ""},
		{`a\ b c''d "" {host}:7`, []string{"a b", "cd", "", "h2:7"}, ""},
		{`ssh 'unclosed {host}`, nil, `--launch-agent "ssh 'unclosed {host}": the single quote at byte 4 is not closed`},
		{`ssh "x`, nil, "the double quote at byte 4 is not closed"},
		{`ssh x\`, nil, "a backslash ends it"},
		{"   ", nil, "--launch-agent is empty"},
	} {
		got, err := agentCommand(tt.template, "h2", "/bin/decorun")
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: %v, %v; want an error containing %q", tt.template, got, err, tt.err)
			} else if ee, ok := err.(*ExitError); !ok || ee.Code != 2 {
				t.Errorf("%q: %v is not a usage error (exit 2)", tt.template, err)
			}
			continue
		}
		want := append(tt.want, "/bin/decorun", AgentArg)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%q: %q, %v; want %q", tt.template, got, err, want)
		}
	}
	cfg := Config{NP: 1, Program: "true", LaunchAgent: `ssh "x`}
	if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), "--launch-agent") {
		t.Errorf("validate with an unclosed quote in --launch-agent: %v", err)
	}
}
