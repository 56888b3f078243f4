package speaker

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/switchyard-lb/switchyard/core/liveness"
	"github.com/switchyard-lb/switchyard/core/speaker"
)

// FuzzServiceFromKube checks the contract between the conversion and core/speaker: whatever
// status a Service carries, conversion never panics, and a Service it accepts is one the
// speaker accepts too (the speaker rejects its whole Service list for one bad entry, so a
// conversion that let one through would stop every announcement).
func FuzzServiceFromKube(f *testing.F) {
	f.Add("10.0.0.1", "", "", "Cluster")
	f.Add("10.0.0.1", "fd00::1", "", "Local")
	f.Add("::ffff:10.0.0.1", "10.0.0.2", "", "")
	f.Add("", "", "lb.example.com", "Cluster")
	f.Add("fe80::1%eth0", "", "", "Cluster")
	f.Add("0.0.0.0", "::", "", "Nearby")
	sp, err := speaker.New(speaker.Config{Liveness: liveness.Config{NodeName: "n", Incarnation: 1, Key: []byte("0123456789abcdef")}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, first, second, hostname, policy string) {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "svc"},
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicy(policy)},
		}
		for _, ip := range []string{first, second} {
			if ip != "" {
				svc.Status.LoadBalancer.Ingress = append(svc.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
			}
		}
		if hostname != "" {
			svc.Status.LoadBalancer.Ingress = append(svc.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{Hostname: hostname})
		}
		out, err := serviceFromKube(svc)
		if err != nil {
			return
		}
		if _, err := sp.SetServices([]speaker.Service{out}, time.Unix(0, 0)); err != nil {
			t.Fatalf("conversion accepted %+v but the speaker rejects it: %v", out, err)
		}
	})
}
