package webhook_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/yaml"

	"github.com/switchyard-lb/switchyard/core/config"
	"github.com/switchyard-lb/switchyard/kube/envtestutil"
	"github.com/switchyard-lb/switchyard/kube/webhook"
)

const (
	namespace  = "metallb-system"
	secretName = "switchyard-webhook-cert"
	configName = "switchyard-webhook-configuration"
)

var (
	env    *envtestutil.Environment
	envErr error
)

func TestMain(m *testing.M) {
	flag.Parse()
	// Fuzzing (FuzzUsable) needs no API server, and every fuzz worker runs TestMain.
	fuzzing := flag.Lookup("test.fuzz") != nil && flag.Lookup("test.fuzz").Value.String() != "" || isFuzzWorker()
	os.Exit(envtestutil.Main(m, !fuzzing, &env, &envErr))
}

func isFuzzWorker() bool {
	w := flag.Lookup("test.fuzzworker")
	return w != nil && w.Value.String() == "true"
}

// served is a webhook server running against the shared API server, with the webhook
// configuration of deploy/webhook.yaml installed and pointed at it.
type served struct {
	client  client.Client
	rotator *webhook.CertRotator
}

// serveWebhooks starts the validating webhooks and the certificate rotator on a manager, and
// installs deploy/webhook.yaml with each webhook's service reference replaced by the local
// URL of the same path. The caBundle is left empty: filling it is the rotator's job.
func serveWebhooks(t *testing.T) *served {
	t.Helper()
	if envErr != nil {
		envtestutil.SkipOrFail(t, envErr)
	}
	ctx := context.Background()
	c, err := client.New(env.Config, client.Options{Scheme: envtestutil.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	port := freePort(t)

	data, err := os.ReadFile(filepath.Join(envtestutil.RepoRoot(), "deploy", "webhook.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var hooks admissionregistrationv1.ValidatingWebhookConfiguration
	if err := yaml.UnmarshalStrict(data, &hooks); err != nil {
		t.Fatalf("deploy/webhook.yaml: %v", err)
	}
	for i := range hooks.Webhooks {
		cc := &hooks.Webhooks[i].ClientConfig
		url := fmt.Sprintf("https://127.0.0.1:%d%s", port, *cc.Service.Path)
		cc.Service, cc.URL = nil, &url
	}
	if err := c.Create(ctx, &hooks); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(ctx, &hooks) })

	mgr, err := manager.New(env.Config, manager.Options{
		Scheme:                 envtestutil.Scheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		t.Fatal(err)
	}
	rotator := webhook.NewCertRotator(mgr.GetAPIReader(), mgr.GetClient(), logr.Discard(), webhook.CertOptions{
		Namespace: namespace, SecretName: secretName, WebhookConfigName: configName,
		DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)},
		CheckInterval: 200 * time.Millisecond,
	})
	srv := crwebhook.NewServer(crwebhook.Options{Host: "127.0.0.1", Port: port, TLSOpts: []func(*tls.Config){rotator.TLSOpt}})
	(&webhook.Validator{Reader: mgr.GetAPIReader(), Namespace: namespace, Log: logr.Discard()}).Register(srv, mgr.GetScheme())
	for _, r := range []manager.Runnable{rotator, srv} {
		if err := mgr.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(runCtx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = c.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: secretName}})
	})

	// The API server trusts the webhook once the rotator has filled in the caBundle; until
	// then (failurePolicy Fail) every write is refused.
	probe := decode(t, "apiVersion: metallb.io/v1beta1\nkind: BFDProfile\nmetadata: {name: probe, namespace: metallb-system}\n")[0]
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := c.Create(ctx, probe.DeepCopy())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook never became reachable: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := c.Delete(ctx, probe); err != nil {
		t.Fatal(err)
	}
	return &served{client: c, rotator: rotator}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// decode splits multi-document YAML into objects, sent to the API server as written.
func decode(t *testing.T, manifests string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, doc := range strings.Split(manifests, "\n---\n") {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatal(err)
		}
		if m == nil {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
	return out
}

// validateMessage is what `switchyard validate` prints for the problems of the last document
// of manifests, without the "file#n: " prefix it puts before every line.
func validateMessage(t *testing.T, manifests string) string {
	t.Helper()
	_, err := config.Load(config.Source{Name: "t.yaml", Data: []byte(manifests)})
	var problems config.Errors
	if !errors.As(err, &problems) {
		t.Fatalf("switchyard validate accepts the bad object (error %v)", err)
	}
	last := fmt.Sprintf("t.yaml#%d: ", len(decode(t, manifests)))
	var lines []string
	for _, p := range problems {
		line := p.Error()
		if !strings.HasPrefix(line, last) {
			t.Fatalf("switchyard validate blames another document: %s", line)
		}
		lines = append(lines, strings.TrimPrefix(line, last))
	}
	return strings.Join(lines, "\n")
}

func doc(kind, version, name, spec string) string {
	return fmt.Sprintf("apiVersion: metallb.io/%s\nkind: %s\nmetadata: {name: %s, namespace: metallb-system}\nspec: %s\n", version, kind, name, spec)
}

func poolDoc(name string, addresses ...string) string {
	return doc("IPAddressPool", "v1beta1", name, "{addresses: ["+strings.Join(addresses, ", ")+"]}")
}

// TestWebhookRefusesWhatValidateRefuses: for every rule, the API server refuses the bad object
// with exactly the lines `switchyard validate` prints for it, and the objects before it
// (the context the rule needs) are accepted.
func TestWebhookRefusesWhatValidateRefuses(t *testing.T) {
	s := serveWebhooks(t)
	const ebgp = "{myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1"
	const ibgp = "{myASN: 64500, peerASN: 64500, peerAddress: 10.0.0.1"
	tests := []struct {
		name     string
		existing []string // accepted first
		bad      string
	}{
		{"range start after end", nil, poolDoc("pool-a", "10.0.0.0/29", "10.0.0.9-10.0.0.1")},
		{"malformed CIDR", nil, poolDoc("a", "10.0.0.300/24")},
		{"bare address", nil, poolDoc("a", "10.0.0.1")},
		{"mixed families", nil, poolDoc("a", "10.0.0.1-2001:db8::1")},
		{"overlap within a pool", nil, poolDoc("a", "10.0.0.0/24", "10.0.0.200-10.0.1.5")},
		{"overlap across pools", []string{poolDoc("a", "10.0.0.0/24")}, poolDoc("b", "10.0.1.0/24", "10.0.0.128/25")},
		{"IPv6 overlap", []string{poolDoc("a", "2001:db8::/64")}, poolDoc("b", "2001:db8::ff-2001:db8:0:1::1")},
		{"bad namespace selector", nil, doc("IPAddressPool", "v1beta1", "a", `{addresses: [10.0.0.0/24], serviceAllocation: {namespaceSelectors: [{matchExpressions: [{key: k, operator: Foo}]}], namespaces: [""]}}`)},
		{"aggregation shorter than CIDR", []string{poolDoc("a", "10.0.0.0/26")}, doc("BGPAdvertisement", "v1beta1", "adv", "{aggregationLength: 24}")},
		{"conflicting localPref", []string{poolDoc("a", "10.0.0.0/24"), doc("BGPAdvertisement", "v1beta1", "one", "{localPref: 100}")},
			doc("BGPAdvertisement", "v1beta1", "two", "{ipAddressPools: [a], localPref: 200}")},
		{"malformed communities", nil, doc("BGPAdvertisement", "v1beta1", "adv", `{communities: ["65536:1", "large:1:2", "1:2", "1:2"]}`)},
		{"unknown community alias", nil, doc("BGPAdvertisement", "v1beta1", "adv", "{communities: [vpn-only]}")},
		{"bad Community aliases", nil, doc("Community", "v1beta1", "c", "{communities: [{name: a, value: '1:2'}, {name: a, value: '3:4'}, {name: b, value: 'x'}]}")},
		{"repeated lists in an L2Advertisement", []string{poolDoc("a", "10.0.0.0/24")},
			doc("L2Advertisement", "v1beta1", "l2", `{ipAddressPools: [a, a], interfaces: [eth0, eth0], nodeSelectors: [{matchLabels: {x: z}}, {matchLabels: {x: z}}]}`)},
		{"keepalive not below hold", nil, doc("BGPPeer", "v1beta2", "p", ebgp+", holdTime: 30s, keepaliveTime: 30s}")},
		{"hold time of 2s", nil, doc("BGPPeer", "v1beta2", "p", ebgp+", holdTime: 2s}")},
		{"keepalive without hold", nil, doc("BGPPeer", "v1beta2", "p", ebgp+", keepaliveTime: 10s}")},
		{"different myASN", []string{doc("BGPPeer", "v1beta2", "p", ebgp+"}")}, doc("BGPPeer", "v1beta2", "q", "{myASN: 64510, peerASN: 64501, peerAddress: 10.0.0.2}")},
		{"multihop on iBGP", nil, doc("BGPPeer", "v1beta2", "p", ibgp+", ebgpMultiHop: true}")},
		{"multihop on iBGP, v1beta1", nil, doc("BGPPeer", "v1beta1", "old", ibgp+", ebgpMultiHop: true}")},
		{"password and passwordSecret", nil, doc("BGPPeer", "v1beta2", "p", ebgp+", password: x, passwordSecret: {name: s}}")},
		{"source address of another family", nil, doc("BGPPeer", "v1beta2", "p", ebgp+", sourceAddress: '2001:db8::1'}")},
		{"same session twice", []string{doc("BGPPeer", "v1beta2", "p", ebgp+"}")}, doc("BGPPeer", "v1beta2", "q", ebgp+"}")},
		{"dynamicASN with peerASN", nil, doc("BGPPeer", "v1beta2", "p", ebgp+", dynamicASN: external}")},
	}
	ctx := context.Background()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var created []*unstructured.Unstructured
			t.Cleanup(func() {
				for i := len(created) - 1; i >= 0; i-- {
					if err := s.client.Delete(ctx, created[i]); err != nil {
						t.Errorf("deleting %s: %v", created[i].GetName(), err)
					}
				}
			})
			for _, y := range tc.existing {
				obj := decode(t, y)[0]
				if err := s.client.Create(ctx, obj); err != nil {
					t.Fatalf("context object %s refused: %v", obj.GetName(), err)
				}
				created = append(created, obj)
			}
			want := validateMessage(t, strings.Join(append(append([]string{}, tc.existing...), tc.bad), "---\n"))
			bad := decode(t, tc.bad)[0]
			err := s.client.Create(ctx, bad)
			if err == nil {
				created = append(created, bad)
				t.Fatalf("the API server accepted the bad object; switchyard validate says:\n%s", want)
			}
			_, got, found := strings.Cut(err.Error(), "denied the request: ")
			if !found {
				t.Fatalf("refused, but not by the webhook: %v", err)
			}
			if got != want {
				t.Errorf("webhook message:\n%s\nswitchyard validate:\n%s", got, want)
			}
		})
	}
}

// TestWebhookAcceptsDocumentationExamples applies each documentation example file (the ones
// core/config's tests load) and deletes it again: the webhooks accept every object.
func TestWebhookAcceptsDocumentationExamples(t *testing.T) {
	s := serveWebhooks(t)
	ctx := context.Background()
	files, err := filepath.Glob(filepath.Join(envtestutil.RepoRoot(), "core", "config", "testdata", "metallb-docs", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no documentation examples found (%v)", err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		objs := decode(t, strings.ReplaceAll(string(data), "\r\n", "\n"))
		// Objects that others refer to go first, as a user applying them one by one would:
		// the webhook checks each against what is already there.
		slices.SortStableFunc(objs, func(a, b *unstructured.Unstructured) int { return applyOrder[a.GetKind()] - applyOrder[b.GetKind()] })
		var created []*unstructured.Unstructured
		for _, obj := range objs {
			if obj.GetNamespace() == "" {
				obj.SetNamespace(namespace)
			}
			if err := s.client.Create(ctx, obj); err != nil {
				t.Errorf("%s: %s %s refused: %v", filepath.Base(file), obj.GetKind(), obj.GetName(), err)
				continue
			}
			created = append(created, obj)
		}
		for i := len(created) - 1; i >= 0; i-- {
			if err := s.client.Delete(ctx, created[i]); err != nil {
				t.Errorf("%s: deleting %s %s: %v", filepath.Base(file), created[i].GetKind(), created[i].GetName(), err)
			}
		}
	}
}

// applyOrder ranks the kinds so that referenced objects exist before their referrers.
var applyOrder = map[string]int{"Community": 0, "BFDProfile": 1, "Secret": 1, "IPAddressPool": 2, "BGPPeer": 3, "L2Advertisement": 4, "BGPAdvertisement": 4}

// TestCertificateRotation renews the certificate as if its renewal time had come: the Secret
// gets a new certificate, the caBundle lists the new CA and the old one, the server serves the
// new certificate, and the API server still reaches the webhook.
func TestCertificateRotation(t *testing.T) {
	s := serveWebhooks(t)
	ctx := context.Background()
	var before corev1.Secret
	if err := s.client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: secretName}, &before); err != nil {
		t.Fatal(err)
	}
	if n := countCerts(t, before.Data["ca.crt"]); n != 1 {
		t.Fatalf("first CA bundle holds %d certificates, want 1", n)
	}

	// A rotator that wants two years left renews the one-year certificate at once, with a
	// three-year one; the running rotator (renewing with four months left) accepts that.
	later := webhook.NewCertRotator(s.client, s.client, logr.Discard(), webhook.CertOptions{
		Namespace: namespace, SecretName: secretName, WebhookConfigName: configName,
		DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)},
		Validity: 3 * 365 * 24 * time.Hour, RenewBefore: 2 * 365 * 24 * time.Hour,
	})
	if err := later.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	var after corev1.Secret
	if err := s.client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: secretName}, &after); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(before.Data["tls.crt"], after.Data["tls.crt"]) {
		t.Fatal("certificate not renewed")
	}
	if n := countCerts(t, after.Data["ca.crt"]); n != 2 {
		t.Fatalf("renewed CA bundle holds %d certificates, want 2 (new and still-valid old)", n)
	}
	var hooks admissionregistrationv1.ValidatingWebhookConfiguration
	if err := s.client.Get(ctx, client.ObjectKey{Name: configName}, &hooks); err != nil {
		t.Fatal(err)
	}
	for _, h := range hooks.Webhooks {
		if !bytes.Equal(h.ClientConfig.CABundle, after.Data["ca.crt"]) {
			t.Errorf("webhook %s caBundle not updated", h.Name)
		}
	}
	// The running server's rotator picks the new certificate up on its next check.
	waitServes(t, s.rotator, after.Data["tls.crt"])
	probe := decode(t, poolDoc("after-rotation", "192.0.2.0/28"))[0]
	if err := s.client.Create(ctx, probe); err != nil {
		t.Fatalf("webhook unreachable after rotation: %v", err)
	}
	if err := s.client.Delete(ctx, probe); err != nil {
		t.Fatal(err)
	}
}

func countCerts(t *testing.T, bundle []byte) int {
	t.Helper()
	n := 0
	for rest := bundle; ; n++ {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			return n
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			t.Fatal(err)
		}
	}
}

func waitServes(t *testing.T, r *webhook.CertRotator, certPEM []byte) {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := r.GetCertificate(nil); err == nil && bytes.Equal(c.Certificate[0], block.Bytes) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the webhook server never loaded the renewed certificate")
}
