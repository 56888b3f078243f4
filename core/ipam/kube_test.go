package ipam

import (
	"reflect"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func kubeSvc(mutate func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:         "default",
			Name:              "web",
			CreationTimestamp: metav1.NewTime(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)),
			Labels:            map[string]string{"app": "web"},
		},
		Spec: corev1.ServiceSpec{
			Type:       corev1.ServiceTypeLoadBalancer,
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
			Ports:      []corev1.ServicePort{{Protocol: corev1.ProtocolTCP, Port: 80}, {Protocol: corev1.ProtocolUDP, Port: 53}},
			Selector:   map[string]string{"app": "web"},
		},
	}
	if mutate != nil {
		mutate(s)
	}
	return s
}

func ptr[T any](v T) *T { return &v }

func TestServiceFromKube(t *testing.T) {
	base := Service{
		Namespace: "default", Name: "web",
		Created:               time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		Labels:                map[string]string{"app": "web"},
		NamespaceLabels:       map[string]string{"env": "prod"},
		FamilyPolicy:          SingleStack,
		Families:              []Family{IPv4},
		Ports:                 []Port{{"TCP", 80}, {"UDP", 53}},
		ExternalTrafficPolicy: TrafficCluster,
		Selector:              map[string]string{"app": "web"},
	}
	with := func(f func(*Service)) Service { s := base; f(&s); return s }
	tests := []struct {
		name     string
		mutate   func(*corev1.Service)
		want     Service
		warnings []string
		wantErr  string
	}{
		{name: "plain", want: base},
		{
			name: "metallb.io annotations",
			mutate: func(s *corev1.Service) {
				s.Annotations = map[string]string{
					AnnotationLoadBalancerIPs: "10.0.0.1, fd00::1",
					AnnotationAddressPool:     "pool-a",
					AnnotationAllowSharedIP:   "key",
				}
				s.Spec.IPFamilyPolicy = ptr(corev1.IPFamilyPolicyRequireDualStack)
				s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
			},
			want: with(func(s *Service) {
				s.RequestedIPs = addrs("10.0.0.1", "fd00::1")
				s.RequestedPool, s.SharingKey = "pool-a", "key"
				s.FamilyPolicy, s.Families = RequireDualStack, []Family{IPv4, IPv6}
			}),
		},
		{
			name: "deprecated annotations",
			mutate: func(s *corev1.Service) {
				s.Annotations = map[string]string{
					DeprecatedAnnotationLoadBalancerIPs: "10.0.0.1",
					DeprecatedAnnotationAddressPool:     "pool-a",
					DeprecatedAnnotationAllowSharedIP:   "key",
				}
			},
			want: with(func(s *Service) {
				s.RequestedIPs = addrs("10.0.0.1")
				s.RequestedPool, s.SharingKey = "pool-a", "key"
			}),
			warnings: []string{
				"annotation metallb.universe.tf/loadBalancerIPs is deprecated: use metallb.io/loadBalancerIPs",
				"annotation metallb.universe.tf/address-pool is deprecated: use metallb.io/address-pool",
				"annotation metallb.universe.tf/allow-shared-ip is deprecated: use metallb.io/allow-shared-ip",
			},
		},
		{
			name: "both forms: metallb.io wins",
			mutate: func(s *corev1.Service) {
				s.Annotations = map[string]string{AnnotationAddressPool: "new", DeprecatedAnnotationAddressPool: "old"}
			},
			want:     with(func(s *Service) { s.RequestedPool = "new" }),
			warnings: []string{"annotation metallb.universe.tf/address-pool is ignored: metallb.io/address-pool is set too and wins"},
		},
		{
			name:   "empty loadBalancerIPs annotation requests nothing",
			mutate: func(s *corev1.Service) { s.Annotations = map[string]string{AnnotationLoadBalancerIPs: " "} },
			want:   base,
		},
		{
			name:     "spec.loadBalancerIP",
			mutate:   func(s *corev1.Service) { s.Spec.LoadBalancerIP = "10.0.0.7" },
			want:     with(func(s *Service) { s.RequestedIPs = addrs("10.0.0.7") }),
			warnings: []string{"spec.loadBalancerIP is deprecated: use annotation metallb.io/loadBalancerIPs"},
		},
		{
			name: "class, Local policy, status, families from clusterIPs",
			mutate: func(s *corev1.Service) {
				s.Spec.LoadBalancerClass = ptr("switchyard.io/lb")
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
				s.Spec.IPFamilies = nil
				s.Spec.ClusterIPs = []string{"fd01::10"}
				s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "fd00::5"}, {Hostname: "lb.example"}, {IP: "bogus"}}
			},
			want: with(func(s *Service) {
				s.LoadBalancerClass = "switchyard.io/lb"
				s.ExternalTrafficPolicy = TrafficLocal
				s.Families = []Family{IPv6}
				s.CurrentIPs = addrs("fd00::5")
			}),
			warnings: []string{`status.loadBalancer.ingress address "bogus" is not an IP address and is ignored`},
		},
		{
			name:    "unparsable loadBalancerIPs",
			mutate:  func(s *corev1.Service) { s.Annotations = map[string]string{AnnotationLoadBalancerIPs: "10.0.0.300"} },
			wantErr: `service default/web: annotation metallb.io/loadBalancerIPs: "10.0.0.300" is not an IP address`,
		},
		{
			name: "two addresses of one family",
			mutate: func(s *corev1.Service) {
				s.Annotations = map[string]string{AnnotationLoadBalancerIPs: "10.0.0.1,10.0.0.2"}
			},
			wantErr: `service default/web: annotation metallb.io/loadBalancerIPs: "10.0.0.1,10.0.0.2" lists two IPv4 addresses; at most one per family is allowed`,
		},
		{
			name: "annotation and spec.loadBalancerIP",
			mutate: func(s *corev1.Service) {
				s.Annotations = map[string]string{AnnotationLoadBalancerIPs: "10.0.0.1"}
				s.Spec.LoadBalancerIP = "10.0.0.2"
			},
			wantErr: "service default/web: annotation metallb.io/loadBalancerIPs and spec.loadBalancerIP are both set; use only the annotation",
		},
		{
			name:    "unparsable spec.loadBalancerIP",
			mutate:  func(s *corev1.Service) { s.Spec.LoadBalancerIP = "nope" },
			wantErr: `service default/web: spec.loadBalancerIP "nope" is not an IP address`,
		},
		{
			name:    "no family",
			mutate:  func(s *corev1.Service) { s.Spec.IPFamilies = nil },
			wantErr: "service default/web: spec.ipFamilies is empty and no spec.clusterIPs tells the IP family",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, warnings, err := ServiceFromKube(kubeSvc(tt.mutate), map[string]string{"env": "prod"})
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("service\n got: %+v\nwant: %+v", got, tt.want)
			}
			slices.Sort(warnings)
			slices.Sort(tt.warnings)
			if !slices.Equal(warnings, tt.warnings) {
				t.Errorf("warnings\n got: %q\nwant: %q", warnings, tt.warnings)
			}
		})
	}
}
