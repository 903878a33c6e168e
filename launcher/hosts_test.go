package launcher

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseHostList(t *testing.T) {
	hs, err := ParseHostList("a:4,b,c:2")
	if err != nil {
		t.Fatal(err)
	}
	want := []Host{{"a", 4, 0}, {"b", 1, 0}, {"c", 2, 0}}
	if !reflect.DeepEqual(hs, want) {
		t.Fatalf("got %v", hs)
	}
	for _, bad := range []string{"a:0", "a:x", "a,,b", "", ":3", "a,:2", "-oProxyCommand=x", "a b"} {
		if _, err := ParseHostList(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestParseHostfile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hosts")
	os.WriteFile(p, []byte("# cluster\nnode1 slots=2 max_slots=3\n\n  node2   # one slot\nnode3 slots=4\n"), 0o644)
	hs, err := ParseHostfile(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []Host{{"node1", 2, 3}, {"node2", 1, 0}, {"node3", 4, 0}}
	if !reflect.DeepEqual(hs, want) {
		t.Fatalf("got %v", hs)
	}
	os.WriteFile(p, []byte("node1 slots=two\n"), 0o644)
	if _, err := ParseHostfile(p); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("bad slots: %v", err)
	}
	os.WriteFile(p, []byte("node1 colour=blue\n"), 0o644)
	if _, err := ParseHostfile(p); err == nil || !strings.Contains(err.Error(), `unknown key "colour"`) {
		t.Fatalf("bad key: %v", err)
	}
}

func TestMap(t *testing.T) {
	hs := []Host{{"a", 2, 0}, {"b", 2, 3}}
	got, _ := Map(hs, 4, false, false)
	if !reflect.DeepEqual(got, []int{0, 0, 1, 1}) {
		t.Errorf("by slot: %v", got)
	}
	got, _ = Map(hs, 3, true, false)
	if !reflect.DeepEqual(got, []int{0, 1, 0}) {
		t.Errorf("by node: %v", got)
	}
	_, err := Map(hs, 5, false, false)
	if err == nil || !strings.Contains(err.Error(), "not enough slots") || !strings.Contains(err.Error(), "--oversubscribe") {
		t.Errorf("5 ranks on 4 slots: %v", err)
	}
	got, err = Map(hs, 6, false, true)
	if err != nil || !reflect.DeepEqual(got, []int{0, 0, 0, 1, 1, 1}) {
		t.Errorf("oversubscribed: %v %v", got, err)
	}
	if _, err := Map([]Host{{"a", 1, 1}}, 2, false, true); err == nil || !strings.Contains(err.Error(), "max_slots") {
		t.Errorf("beyond max_slots: %v", err)
	}
}
