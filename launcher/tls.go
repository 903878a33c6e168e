package launcher

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
)

// jobCert makes a self-signed certificate for this job's server, valid for
// 127.0.0.1, localhost and addr, kept in memory only. The ranks get its PEM
// (jobenv.EnvCAPEM) and trust nothing else, so a man in the middle cannot
// pose as the server; the job token then authenticates the ranks.
func jobCert(addr string) (*tls.Config, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "decorun job server"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	if ip := net.ParseIP(addr); ip != nil {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	} else {
		tmpl.DNSNames = append(tmpl.DNSNames, addr)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, "", fmt.Errorf("job certificate: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, "", err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, "", err
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, string(certPEM), nil
}

// serverAddr is the address remote hosts reach this machine at: ServerAddr,
// or the source address of the route to the first remote host.
func serverAddr(ctx context.Context, cfg Config, place []int) (string, error) {
	if cfg.ServerAddr != "" {
		return cfg.ServerAddr, nil
	}
	for _, h := range place {
		name := cfg.Hosts[h].Name
		if isLocal(name) {
			continue
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "udp", net.JoinHostPort(name, "9")) // sends nothing
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if err != nil {
			return "", usageError("cannot tell which address host %s reaches this machine at (%v): pass --server-addr", name, err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).IP.String(), nil
	}
	return "", usageError("no remote host")
}
