package webhook

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Keys of the certificate Secret (a kubernetes.io/tls Secret plus the CA bundle).
const (
	secretCertKey = corev1.TLSCertKey       // serving certificate
	secretKeyKey  = corev1.TLSPrivateKeyKey // its key
	secretCAKey   = "ca.crt"                // CA certificates to trust, newest first
)

// CertOptions configure the CertRotator.
type CertOptions struct {
	// Namespace and SecretName name the Secret the certificate is kept in, so that every
	// replica serves the same one and a restart does not churn it.
	Namespace, SecretName string
	// WebhookConfigName is the ValidatingWebhookConfiguration whose caBundle is kept current.
	WebhookConfigName string
	// DNSNames and IPs are the names the API server reaches the webhook by, for example
	// switchyard-webhook-service.metallb-system.svc.
	DNSNames []string
	IPs      []net.IP
	// Validity is the lifetime of a certificate (default one year); a certificate is
	// renewed once less than RenewBefore (default a third of Validity) is left.
	Validity, RenewBefore time.Duration
	// CheckInterval is how often the Secret and the caBundle are checked (default 1 min).
	CheckInterval time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// CertRotator generates the webhook's serving certificate and its CA, stores them in a
// Secret, renews them before they expire, keeps the webhook configuration's caBundle current
// and hands the certificate to the webhook server through GetCertificate.
//
// Every replica runs one. They agree through the Secret: whoever finds it missing or due
// for renewal writes a new one (optimistic concurrency makes a second writer fail and re-read),
// and everyone serves what the Secret holds. On renewal the caBundle lists the new CA and the
// old one until the old one expires, so replicas still serving the old certificate stay
// trusted until their next check.
type CertRotator struct {
	opts   CertOptions
	reader client.Reader // live reads: a cache would watch every Secret of the cluster
	writer client.Client
	log    logr.Logger

	mu      sync.Mutex
	current *tls.Certificate
}

// NewCertRotator returns a rotator; reader should read from the API server directly.
func NewCertRotator(reader client.Reader, writer client.Client, log logr.Logger, opts CertOptions) *CertRotator {
	if opts.Validity <= 0 {
		opts.Validity = 365 * 24 * time.Hour
	}
	if opts.RenewBefore <= 0 {
		opts.RenewBefore = opts.Validity / 3
	}
	if opts.CheckInterval <= 0 {
		opts.CheckInterval = time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &CertRotator{opts: opts, reader: reader, writer: writer, log: log}
}

// GetCertificate serves the current certificate; set it as the webhook server's
// tls.Config.GetCertificate.
func (r *CertRotator) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.current == nil {
		return nil, errors.New("webhook serving certificate not loaded yet")
	}
	return r.current, nil
}

// TLSOpt sets GetCertificate on the webhook server's TLS configuration.
func (r *CertRotator) TLSOpt(c *tls.Config) { c.GetCertificate = r.GetCertificate }

// ReadyCheck fails until a certificate is loaded; use it as a readiness check.
func (r *CertRotator) ReadyCheck(*http.Request) error {
	_, err := r.GetCertificate(nil)
	return err
}

// NeedLeaderElection is false: every replica serves webhooks and needs the certificate.
func (r *CertRotator) NeedLeaderElection() bool { return false }

// Start checks the certificate now and every CheckInterval until ctx ends. A failed check is
// retried after a second, not a whole interval.
func (r *CertRotator) Start(ctx context.Context) error {
	for {
		wait := r.opts.CheckInterval
		if err := r.Ensure(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			r.log.Error(err, "checking the webhook certificate")
			wait = time.Second
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// Ensure makes the Secret hold a valid certificate (renewing it when due), loads it, and
// sets the webhook configuration's caBundle to the Secret's CA bundle.
func (r *CertRotator) Ensure(ctx context.Context) error {
	key := types.NamespacedName{Namespace: r.opts.Namespace, Name: r.opts.SecretName}
	var secret corev1.Secret
	exists := true
	if err := r.reader.Get(ctx, key, &secret); err != nil {
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("reading Secret %s: %w", key, err)
		}
		exists = false
	}
	now := r.opts.Now()
	cert, why := r.usable(&secret, now)
	if cert == nil {
		r.log.Info("generating the webhook serving certificate", "reason", why)
		data, err := r.generate(now, secret.Data[secretCAKey])
		if err != nil {
			return err
		}
		secret.Data = data
		secret.Type = corev1.SecretTypeTLS
		if exists {
			err = r.writer.Update(ctx, &secret)
		} else {
			secret.ObjectMeta = metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name,
				Labels: map[string]string{"app.kubernetes.io/name": "switchyard", "app.kubernetes.io/component": "webhook"}}
			err = r.writer.Create(ctx, &secret)
		}
		if err != nil {
			// Another replica may have won the race; the next check loads its certificate.
			return fmt.Errorf("writing Secret %s: %w", key, err)
		}
		if cert, why = r.usable(&secret, now); cert == nil {
			return fmt.Errorf("the certificate just generated is unusable: %s", why)
		}
	}
	r.mu.Lock()
	r.current = cert
	r.mu.Unlock()
	return r.patchCABundle(ctx, secret.Data[secretCAKey])
}

// usable returns the Secret's certificate when it is valid for long enough and covers every
// name, else nil and why not.
func (r *CertRotator) usable(secret *corev1.Secret, now time.Time) (*tls.Certificate, string) {
	if len(secret.Data[secretCertKey]) == 0 {
		return nil, "no certificate stored yet"
	}
	cert, err := tls.X509KeyPair(secret.Data[secretCertKey], secret.Data[secretKeyKey])
	if err != nil {
		return nil, "stored certificate is invalid: " + err.Error()
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, "stored certificate is invalid: " + err.Error()
		}
	}
	if left := leaf.NotAfter.Sub(now); left < r.opts.RenewBefore {
		return nil, fmt.Sprintf("certificate expires at %s, renewing %s before", leaf.NotAfter.UTC().Format(time.RFC3339), r.opts.RenewBefore)
	}
	for _, name := range r.opts.DNSNames {
		if !slices.Contains(leaf.DNSNames, name) {
			return nil, fmt.Sprintf("certificate does not cover %q", name)
		}
	}
	for _, ip := range r.opts.IPs {
		if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
			return nil, fmt.Sprintf("certificate does not cover %s", ip)
		}
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(secret.Data[secretCAKey]) {
		return nil, "stored CA bundle is invalid"
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now}); err != nil {
		return nil, "stored certificate does not verify against the CA bundle: " + err.Error()
	}
	return &cert, ""
}

// generate makes a new CA and a serving certificate signed by it, and the Secret data for
// them: the CA bundle is the new CA followed by the CAs of oldBundle that are still valid.
func (r *CertRotator) generate(now time.Time, oldBundle []byte) (map[string][]byte, error) {
	notBefore := now.Add(-time.Hour) // tolerate clock skew between nodes
	notAfter := now.Add(r.opts.Validity)
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTemplate := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "switchyard-webhook-ca"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("creating the webhook CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	commonName := "switchyard-webhook"
	if len(r.opts.DNSNames) > 0 {
		commonName = r.opts.DNSNames[0]
	}
	template := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: commonName},
		DNSNames:     r.opts.DNSNames,
		IPAddresses:  r.opts.IPs,
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("creating the webhook serving certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	bundle := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	for rest := oldBundle; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if old, err := x509.ParseCertificate(block.Bytes); err == nil && old.NotAfter.After(now) {
			bundle = append(bundle, pem.EncodeToMemory(block)...)
		}
	}
	return map[string][]byte{
		secretCertKey: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		secretKeyKey:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		secretCAKey:   bundle,
	}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic("crypto/rand failed: " + err.Error()) // the stdlib documents this never happens
	}
	return n
}

// patchCABundle sets every webhook's caBundle in the configuration to bundle.
func (r *CertRotator) patchCABundle(ctx context.Context, bundle []byte) error {
	if r.opts.WebhookConfigName == "" {
		return nil
	}
	var cfg admissionregistrationv1.ValidatingWebhookConfiguration
	if err := r.reader.Get(ctx, client.ObjectKey{Name: r.opts.WebhookConfigName}, &cfg); err != nil {
		return fmt.Errorf("reading ValidatingWebhookConfiguration %s: %w", r.opts.WebhookConfigName, err)
	}
	changed := false
	for i := range cfg.Webhooks {
		if !bytes.Equal(cfg.Webhooks[i].ClientConfig.CABundle, bundle) {
			cfg.Webhooks[i].ClientConfig.CABundle = bundle
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if err := r.writer.Update(ctx, &cfg); err != nil {
		return fmt.Errorf("updating the caBundle of ValidatingWebhookConfiguration %s: %w", r.opts.WebhookConfigName, err)
	}
	r.log.Info("webhook caBundle updated", "configuration", r.opts.WebhookConfigName)
	return nil
}
