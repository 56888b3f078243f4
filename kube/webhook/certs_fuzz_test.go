package webhook

import (
	"net"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
)

// FuzzUsable feeds arbitrary Secret contents to the check that decides whether the stored
// certificate can be served: it must never panic, and whatever it accepts must be a
// certificate and key that belong together and cover the configured names.
func FuzzUsable(f *testing.F) {
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	r := NewCertRotator(nil, nil, logr.Discard(), CertOptions{DNSNames: []string{"svc.ns.svc"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Now: func() time.Time { return now }})
	good, err := r.generate(now, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good[secretCertKey], good[secretKeyKey], good[secretCAKey])
	f.Add(good[secretCertKey], good[secretKeyKey], []byte{})
	f.Add(good[secretCAKey], good[secretKeyKey], good[secretCertKey])
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, cert, key, ca []byte) {
		s := &corev1.Secret{Data: map[string][]byte{secretCertKey: cert, secretKeyKey: key, secretCAKey: ca}}
		c, why := r.usable(s, now)
		if c == nil {
			if why == "" {
				t.Fatal("refused without a reason")
			}
			return
		}
		if why != "" || len(c.Certificate) == 0 || c.PrivateKey == nil {
			t.Fatalf("accepted an incomplete certificate (reason %q)", why)
		}
	})
}

// TestGeneratedCertificateIsUsable: what generate writes, usable accepts, and a certificate
// for other names is renewed.
func TestGeneratedCertificateIsUsable(t *testing.T) {
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	r := NewCertRotator(nil, nil, logr.Discard(), CertOptions{DNSNames: []string{"svc.ns.svc"}, Now: func() time.Time { return now }})
	data, err := r.generate(now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, why := r.usable(&corev1.Secret{Data: data}, now); c == nil {
		t.Fatalf("fresh certificate refused: %s", why)
	}
	tests := []struct {
		name string
		opts CertOptions
		at   time.Time
		want string
	}{
		{"another name", CertOptions{DNSNames: []string{"other.ns.svc"}}, now, `certificate does not cover "other.ns.svc"`},
		{"an IP not covered", CertOptions{DNSNames: []string{"svc.ns.svc"}, IPs: []net.IP{net.IPv4(10, 0, 0, 1)}}, now, "certificate does not cover 10.0.0.1"},
		{"due for renewal", CertOptions{DNSNames: []string{"svc.ns.svc"}}, now.Add(250 * 24 * time.Hour), "certificate expires at 2027-11-22T00:00:00Z, renewing 2920h0m0s before"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			other := NewCertRotator(nil, nil, logr.Discard(), tc.opts)
			c, why := other.usable(&corev1.Secret{Data: data}, tc.at)
			if c != nil || why != tc.want {
				t.Errorf("usable = %v, %q; want nil, %q", c != nil, why, tc.want)
			}
		})
	}
}
