package tcp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"time"
)

const (
	magic     = "DECOTCP1"
	nonceLen  = 32
	helloLen  = len(magic) + 9 + nonceLen // magic, src, dst, mode, nonce
	modeAt    = len(magic) + 8
	modePlain = 1 // the hello's mode byte: the dialer's Config.Plain
	macLen    = sha256.Size
	ekmLabel  = "EXPORTER-decorun-tcp"
	accepted  = 1
	labelAcc  = "acceptor"
	labelDial = "dialer"
)

// String encodes p as "ADDR", then its fingerprint in hex when it has one,
// then "plain" when its frames are not sealed, separated by spaces, for
// ParsePeer.
func (p Peer) String() string {
	s := p.Addr
	if len(p.Fingerprint) > 0 {
		s += " " + hex.EncodeToString(p.Fingerprint)
	}
	if p.Plain {
		s += " " + plainWord
	}
	return s
}

const plainWord = "plain"

// ParsePeer reads what Peer.String writes.
func ParsePeer(s string) (Peer, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return Peer{}, fmt.Errorf("tcp: empty peer record")
	}
	if _, _, err := net.SplitHostPort(f[0]); err != nil {
		return Peer{}, fmt.Errorf("tcp: peer record %q: %w", s, err)
	}
	p := Peer{Addr: f[0]}
	f = f[1:]
	if len(f) > 0 && f[len(f)-1] == plainWord {
		p.Plain = true
		f = f[:len(f)-1]
	}
	switch len(f) {
	case 0:
	case 1:
		b, err := hex.DecodeString(f[0])
		if err != nil || len(b) != sha256.Size {
			return Peer{}, fmt.Errorf("tcp: peer record %q: bad fingerprint", s)
		}
		p.Fingerprint = b
	default:
		return Peer{}, fmt.Errorf("tcp: peer record %q: too many fields", s)
	}
	return p, nil
}

// sealWord says how a rank with Config.Plain plain sends its frames, for
// ErrMismatch's errors.
func sealWord(plain bool) string {
	if plain {
		return "sends its frames unencrypted"
	}
	return "encrypts its frames"
}

// selfSigned makes an ephemeral ECDSA P-256 certificate and returns it
// with the SHA-256 fingerprint of its DER form.
func selfSigned() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "decorun rank"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	fp := sha256.Sum256(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, fp[:], nil
}

// proof is HMAC(key, label | hello | nonce | binding).
func (l *Link) proof(label string, hello, nonce, binding []byte) []byte {
	m := hmac.New(sha256.New, l.cfg.Key)
	m.Write([]byte(label))
	m.Write(hello)
	m.Write(nonce)
	m.Write(binding)
	return m.Sum(nil)
}

// binding is the channel binding of c: TLS keying material, or nothing.
func binding(c net.Conn) ([]byte, error) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return nil, nil
	}
	st := tc.ConnectionState()
	return st.ExportKeyingMaterial(ekmLabel, nil, 32)
}

// dial connects to rank p at rec and runs the dialer's side of the
// handshake. It returns the raw connection, and with TLS the sealer its
// frames go through.
func (l *Link) dial(ctx context.Context, p int, rec Peer) (net.Conn, *sealer, error) {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
	defer cancel()
	if l.cfg.TLS && len(rec.Fingerprint) == 0 {
		return nil, nil, fmt.Errorf("tcp: rank %d at %s published no certificate fingerprint and the job uses TLS", p, rec.Addr)
	}
	if rec.Plain != l.cfg.Plain {
		return nil, nil, fmt.Errorf("%w: rank %d %s and rank %d %s", ErrMismatch, p, sealWord(rec.Plain), l.cfg.Rank, sealWord(l.cfg.Plain))
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", rec.Addr)
	if err != nil {
		return nil, nil, fmt.Errorf("tcp: dialing rank %d: %w", p, err)
	}
	s, err := l.handshakeDial(ctx, raw, p, rec)
	if err != nil {
		raw.Close()
		return nil, nil, err
	}
	return raw, s, nil
}

// handshakeDial runs the dialer's side of the handshake on raw and returns,
// with TLS, the sealer for the frames that follow on raw (the TLS session
// carries the handshake only).
func (l *Link) handshakeDial(ctx context.Context, raw net.Conn, p int, rec Peer) (*sealer, error) {
	if d, ok := ctx.Deadline(); ok {
		raw.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var c net.Conn = raw
	if l.cfg.TLS {
		want := rec.Fingerprint
		tc := tls.Client(raw, &tls.Config{
			MinVersion:         tls.VersionTLS13,
			InsecureSkipVerify: true, // the certificate is pinned by fingerprint below
			VerifyPeerCertificate: func(certs [][]byte, _ [][]*x509.Certificate) error {
				if len(certs) == 0 {
					return errors.New("no certificate")
				}
				if got := sha256.Sum256(certs[0]); !hmac.Equal(got[:], want) {
					return fmt.Errorf("certificate fingerprint %x is not the one rank %d published", got[:8], p)
				}
				return nil
			},
		})
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("tcp: TLS with rank %d at %s: %w", p, rec.Addr, err)
		}
		c = tc
	}
	b, err := binding(c)
	if err != nil {
		return nil, fmt.Errorf("tcp: TLS with rank %d at %s: %w", p, rec.Addr, err)
	}
	hello := make([]byte, helloLen)
	copy(hello, magic)
	binary.LittleEndian.PutUint32(hello[len(magic):], uint32(l.cfg.Rank))
	binary.LittleEndian.PutUint32(hello[len(magic)+4:], uint32(p))
	if l.cfg.Plain {
		hello[modeAt] = modePlain
	}
	if _, err := rand.Read(hello[modeAt+1:]); err != nil {
		return nil, err
	}
	if _, err := c.Write(hello); err != nil {
		return nil, fmt.Errorf("tcp: handshake with rank %d at %s: %w", p, rec.Addr, err)
	}
	resp := make([]byte, nonceLen+macLen)
	if _, err := io.ReadFull(c, resp); err != nil {
		return nil, fmt.Errorf("tcp: handshake with rank %d at %s: %w", p, rec.Addr, err)
	}
	nonce := resp[:nonceLen]
	if !hmac.Equal(resp[nonceLen:], l.proof(labelAcc, hello, nonce, b)) {
		return nil, fmt.Errorf("%w: the listener at %s could not prove that it is rank %d of this job (wrong job key)", ErrAuth, rec.Addr, p)
	}
	if _, err := c.Write(l.proof(labelDial, hello, nonce, b)); err != nil {
		return nil, fmt.Errorf("tcp: handshake with rank %d at %s: %w", p, rec.Addr, err)
	}
	var ack [1]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil || ack[0] != accepted {
		return nil, fmt.Errorf("%w: rank %d at %s refused this rank's connection", ErrAuth, p, rec.Addr)
	}
	if !stop() {
		return nil, fmt.Errorf("tcp: handshake with rank %d at %s: %w", p, rec.Addr, ctx.Err())
	}
	raw.SetDeadline(time.Time{})
	return l.sealerOf(c)
}

// sealerOf returns the sealer keyed from c's TLS session, or nil without
// TLS or with Config.Plain. Both ends call it once the handshake is over, when neither has
// anything more in flight on the TLS session: the acceptor writes nothing
// after its ack, and the dialer nothing after its proof until the ack
// came, so no TLS record is left buffered when the raw frames start.
func (l *Link) sealerOf(c net.Conn) (*sealer, error) {
	tc, ok := c.(*tls.Conn)
	if !ok || l.cfg.Plain {
		return nil, nil
	}
	return newSealer(tc)
}

// handshakeAccept runs the acceptor's side of the handshake on raw and
// returns the peer's rank and, with TLS, the sealer that opens the frames
// that follow on raw.
func (l *Link) handshakeAccept(raw net.Conn) (int, *sealer, error) {
	raw.SetDeadline(time.Now().Add(l.cfg.Timeout))
	var c net.Conn = raw
	if l.tlsConf != nil {
		tc := tls.Server(raw, l.tlsConf)
		if err := tc.Handshake(); err != nil {
			return 0, nil, err
		}
		c = tc
	}
	b, err := binding(c)
	if err != nil {
		return 0, nil, err
	}
	hello := make([]byte, helloLen)
	if _, err := io.ReadFull(c, hello); err != nil {
		return 0, nil, err
	}
	src := int(binary.LittleEndian.Uint32(hello[len(magic):]))
	dst := int(binary.LittleEndian.Uint32(hello[len(magic)+4:]))
	if string(hello[:len(magic)]) != magic || dst != l.cfg.Rank || src < 0 || src >= l.cfg.Size || src == dst || hello[modeAt] > modePlain {
		return 0, nil, errors.New("bad hello")
	}
	if plain := hello[modeAt] == modePlain; plain != l.cfg.Plain {
		return 0, nil, fmt.Errorf("%w: rank %d %s and rank %d %s", ErrMismatch, src, sealWord(plain), l.cfg.Rank, sealWord(l.cfg.Plain))
	}
	resp := make([]byte, nonceLen, nonceLen+macLen)
	if _, err := rand.Read(resp); err != nil {
		return 0, nil, err
	}
	resp = append(resp, l.proof(labelAcc, hello, resp[:nonceLen], b)...)
	if _, err := c.Write(resp); err != nil {
		return 0, nil, err
	}
	mac := make([]byte, macLen)
	if _, err := io.ReadFull(c, mac); err != nil {
		return 0, nil, err
	}
	if !hmac.Equal(mac, l.proof(labelDial, hello, resp[:nonceLen], b)) {
		return 0, nil, ErrAuth
	}
	l.mu.Lock()
	dup := l.from[src]
	l.from[src] = true
	l.mu.Unlock()
	if dup {
		return 0, nil, fmt.Errorf("a second connection from rank %d", src)
	}
	if _, err := c.Write([]byte{accepted}); err != nil {
		return 0, nil, err
	}
	raw.SetDeadline(time.Time{})
	sl, err := l.sealerOf(c)
	if err != nil {
		return 0, nil, err
	}
	return src, sl, nil
}
