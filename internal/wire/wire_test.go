package wire

import (
	"bytes"
	"errors"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	cases := []struct {
		h Header
		p []byte
	}{
		{Header{Kind: Eager, Comm: 7, Src: 3, Tag: 42, Seq: 1, N: 5}, []byte("hello")},
		{Header{Kind: Eager, Src: 0, Tag: 0, Seq: 1 << 60, N: 0, Type: "[]float64"}, nil},
		{Header{Kind: RTS, Src: 1, Tag: 1<<31 - 1, Seq: 9, ID: 77, N: 1 << 30, Type: "main.Point"}, nil},
		{Header{Kind: CTS, Flags: FlagTruncate, ID: 77}, nil},
		{Header{Kind: Data, ID: 77, N: 1 << 20}, bytes.Repeat([]byte{1, 2}, 100)},
		{Header{Kind: Credit, N: 1 << 22}, nil},
		{Header{Kind: Revoke, ID: 3}, nil},
		{Header{Kind: Fin, Seq: 12}, nil},
	}
	for _, c := range cases {
		f := append(Append(nil, &c.h), c.p...)
		if len(f) != c.h.Size(len(c.p)) {
			t.Fatalf("%v: size %d, want %d", c.h.Kind, len(f), c.h.Size(len(c.p)))
		}
		var got Header
		p, err := Decode(f, &got)
		if err != nil {
			t.Fatalf("%v: %v", c.h.Kind, err)
		}
		if got != c.h || !bytes.Equal(p, c.p) {
			t.Fatalf("round trip: got %+v %q, want %+v %q", got, p, c.h, c.p)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	good := Append(nil, &Header{Kind: Eager, N: 3})
	good = append(good, "abc"...)
	var h Header
	cases := []struct {
		name string
		f    []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"short", good[:10], ErrShort},
		{"magic", append([]byte{0}, good[1:]...), ErrMagic},
		{"kind", func() []byte { b := bytes.Clone(good); b[1] = 99; return b }(), ErrKind},
		{"typename", func() []byte { b := bytes.Clone(good); b[44] = 200; return b }(), ErrTypeName},
	}
	for _, c := range cases {
		if _, err := Decode(c.f, &h); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := Decode(good[:len(good)-1], &h); err == nil {
		t.Errorf("eager frame with a missing payload byte decoded without error")
	}
}

func TestAppendNoAlloc(t *testing.T) {
	buf := make([]byte, 0, 256)
	h := Header{Kind: Eager, N: 8, Type: "[]int"}
	if n := testing.AllocsPerRun(100, func() { buf = Append(buf[:0], &h) }); n != 0 {
		t.Fatalf("Append allocates %v times", n)
	}
	f := append(buf, make([]byte, 8)...)
	var g Header
	g.Type = "[]int"
	if n := testing.AllocsPerRun(100, func() { _, _ = Decode(f, &g) }); n != 0 {
		t.Fatalf("Decode allocates %v times when the type name repeats", n)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(append(Append(nil, &Header{Kind: Eager, Src: 1, Tag: 2, Seq: 3, N: 2, Type: "int"}), 1, 2))
	f.Add(Append(nil, &Header{Kind: RTS, ID: 1, N: 1 << 40}))
	f.Add(Append(nil, &Header{Kind: Credit, N: 5}))
	f.Add([]byte{Magic})
	f.Fuzz(func(t *testing.T, b []byte) {
		var h Header
		p, err := Decode(b, &h)
		if err != nil {
			return
		}
		// A frame that decodes re-encodes to the same bytes.
		again := append(Append(nil, &h), p...)
		if h.Flags == b[2] && b[3] == 0 && b[46] == 0 && b[47] == 0 && !bytes.Equal(again, b) {
			t.Fatalf("re-encode differs:\n%x\n%x", b, again)
		}
		var h2 Header
		p2, err := Decode(again, &h2)
		if err != nil || h2 != h || !bytes.Equal(p, p2) {
			t.Fatalf("decode(encode(h)) = %+v, %v; want %+v", h2, err, h)
		}
	})
}
