package tcp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
)

// Sealed frames (Config.TLS). The TLS handshake authenticates the
// acceptor and gives both ends a shared secret (RFC 5705/8446 exported
// keying material); frames then travel on the raw socket, each sealed on
// its own with AES-128-GCM:
//
//	4-byte little-endian plaintext length n | ciphertext (n bytes) | tag (16 bytes)
//
// The length is the additional data, the nonce a 64-bit count of the
// frames sealed on the connection (never sent), the key one per
// connection and direction, replaced by the next one of a chain every
// rekeyBytes. See the package doc for the security argument.

const (
	tagLen      = 16
	frameSecret = "EXPORTER-decorun-tcp-frames"
	frameCtx    = "dialer to acceptor"
)

// rekeyBytes: both ends move to the next key of the chain once a key has
// sealed this many bytes, well below AES-GCM's limits for one key (a
// distinguishing advantage of about 2^-68 at 2^30 blocks).
var rekeyBytes uint64 = 16 << 30

// ErrForged is wrapped by the error a link reports when a sealed frame
// fails to open: it was altered, replayed, reordered, dropped or injected
// on the wire (or the peer is not the process that ran the handshake).
var ErrForged = errors.New("tcp: frame failed authentication")

// sealer seals (sender) or opens (receiver) the frames of one connection,
// in order. Not safe for concurrent use: the outbound's mu or the
// inbound's tok guards it.
type sealer struct {
	aead   cipher.AEAD
	secret [32]byte
	count  uint64 // frames sealed or opened so far: the next nonce
	used   uint64 // bytes sealed or opened under the current key
	nonce  [12]byte
	hdr    [4]byte // the length field of a large frame being opened
}

// newSealer keys a sealer from the TLS session on c.
func newSealer(c *tls.Conn) (*sealer, error) {
	st := c.ConnectionState()
	sec, err := st.ExportKeyingMaterial(frameSecret, []byte(frameCtx), 32)
	if err != nil {
		return nil, err
	}
	s := &sealer{}
	copy(s.secret[:], sec)
	return s, s.key()
}

// prf is HMAC-SHA256(secret, label).
func (s *sealer) prf(label string) []byte {
	m := hmac.New(sha256.New, s.secret[:])
	m.Write([]byte(label))
	return m.Sum(nil)
}

// key sets the AEAD from the current secret.
func (s *sealer) key() error {
	b, err := aes.NewCipher(s.prf("decorun-tcp key")[:16])
	if err != nil {
		return err
	}
	s.aead, err = cipher.NewGCM(b)
	return err
}

// next counts a frame of n sealed bytes and moves along the key chain
// when the current key has done its share.
func (s *sealer) next(n int) error {
	s.count++
	s.used += uint64(n)
	if s.used < rekeyBytes {
		return nil
	}
	copy(s.secret[:], s.prf("decorun-tcp next"))
	s.used = 0
	return s.key()
}

func (s *sealer) setNonce() []byte {
	binary.LittleEndian.PutUint64(s.nonce[4:], s.count)
	return s.nonce[:]
}

// seal appends to dst the sealed frame of head and body (both may be
// empty). dst should have room for 4+len(head)+len(body)+tagLen more bytes.
func (s *sealer) seal(dst, head, body []byte) []byte {
	n := len(head) + len(body)
	at := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(n))
	p := len(dst)
	dst = append(append(dst, head...), body...)
	dst = s.aead.Seal(dst[:p], s.setNonce(), dst[p:], dst[at:p])
	if err := s.next(n + tagLen); err != nil {
		panic(err) // aes.NewCipher fails only for a key of a bad length
	}
	return dst
}

// open appends to dst the plaintext of the sealed frame whose length field
// is hdr and whose ciphertext and tag are ct (dst may be ct[:0]).
func (s *sealer) open(dst, hdr, ct []byte) ([]byte, error) {
	pt, err := s.aead.Open(dst, s.setNonce(), ct, hdr)
	if err != nil {
		return nil, err
	}
	if err := s.next(len(ct)); err != nil {
		return nil, err
	}
	return pt, nil
}

// forged is the error for the frame that failed to open on in.
func (in *inbound) forged(err error) error {
	return fmt.Errorf("%w: rank %d: frame %d from rank %d (%s) does not open: altered, replayed, reordered or injected on the wire; the connection is closed (%v)",
		ErrForged, in.l.cfg.Rank, in.open.count, in.src, in.conn.RemoteAddr(), err)
}
