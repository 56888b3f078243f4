package ipam

import (
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// The Service annotations MetalLB defines, which Switchyard reads unchanged.
const (
	AnnotationLoadBalancerIPs = "metallb.io/loadBalancerIPs"
	AnnotationAddressPool     = "metallb.io/address-pool"
	AnnotationAllowSharedIP   = "metallb.io/allow-shared-ip"
	// AnnotationAllocatedFromPool is written by the controller: the pool a Service's
	// addresses come from.
	AnnotationAllocatedFromPool = "metallb.io/ip-allocated-from-pool"

	// The deprecated forms, still honoured when the metallb.io form is absent.
	DeprecatedAnnotationLoadBalancerIPs = "metallb.universe.tf/loadBalancerIPs"
	DeprecatedAnnotationAddressPool     = "metallb.universe.tf/address-pool"
	DeprecatedAnnotationAllowSharedIP   = "metallb.universe.tf/allow-shared-ip"
)

// ServiceFromKube converts a Kubernetes Service into the allocator's Service. nsLabels are the
// labels of its namespace. It does not look at spec.type: the caller decides which Services
// are load balancers.
//
// Warnings describe accepted but deprecated or ignored input (a metallb.universe.tf
// annotation, spec.loadBalancerIP, an unparsable status address). An error means the
// Service's requests cannot be understood; it names the annotation or field at fault.
func ServiceFromKube(svc *corev1.Service, nsLabels map[string]string) (Service, []string, error) {
	s := Service{
		Namespace:       svc.Namespace,
		Name:            svc.Name,
		Created:         svc.CreationTimestamp.Time,
		Labels:          svc.Labels,
		NamespaceLabels: nsLabels,
		FamilyPolicy:    SingleStack,
		Selector:        svc.Spec.Selector,
	}
	var warnings []string
	fail := func(format string, args ...any) (Service, []string, error) {
		return Service{}, warnings, fmt.Errorf("service %s/%s: %s", svc.Namespace, svc.Name, fmt.Sprintf(format, args...))
	}
	annotation := func(stable, deprecated string) (string, bool) {
		if v, ok := svc.Annotations[stable]; ok {
			if d, dok := svc.Annotations[deprecated]; dok && d != v {
				warnings = append(warnings, fmt.Sprintf("annotation %s is ignored: %s is set too and wins", deprecated, stable))
			}
			return v, true
		}
		if v, ok := svc.Annotations[deprecated]; ok {
			warnings = append(warnings, fmt.Sprintf("annotation %s is deprecated: use %s", deprecated, stable))
			return v, true
		}
		return "", false
	}

	if c := svc.Spec.LoadBalancerClass; c != nil {
		s.LoadBalancerClass = *c
	}
	if p := svc.Spec.IPFamilyPolicy; p != nil {
		switch FamilyPolicy(*p) {
		case SingleStack, PreferDualStack, RequireDualStack:
			s.FamilyPolicy = FamilyPolicy(*p)
		default:
			return fail("spec.ipFamilyPolicy %q is not SingleStack, PreferDualStack or RequireDualStack", *p)
		}
	}
	for _, f := range svc.Spec.IPFamilies {
		switch f {
		case corev1.IPv4Protocol:
			s.Families = append(s.Families, IPv4)
		case corev1.IPv6Protocol:
			s.Families = append(s.Families, IPv6)
		default:
			return fail("spec.ipFamilies has unknown family %q", f)
		}
	}
	if len(s.Families) == 0 {
		// Older API servers leave ipFamilies empty; the cluster IPs tell the family.
		clusterIPs := svc.Spec.ClusterIPs
		if len(clusterIPs) == 0 && svc.Spec.ClusterIP != "" {
			clusterIPs = []string{svc.Spec.ClusterIP}
		}
		for _, c := range clusterIPs {
			if ip, err := netip.ParseAddr(c); err == nil {
				s.Families = append(s.Families, familyOf(ip.Unmap()))
			}
		}
		if len(s.Families) == 0 {
			return fail("spec.ipFamilies is empty and no spec.clusterIPs tells the IP family")
		}
	}

	ipsAnnotation, _ := annotation(AnnotationLoadBalancerIPs, DeprecatedAnnotationLoadBalancerIPs)
	hasIPs := strings.TrimSpace(ipsAnnotation) != "" // an empty annotation requests nothing, as in MetalLB
	switch {
	case hasIPs && svc.Spec.LoadBalancerIP != "":
		return fail("annotation %s and spec.loadBalancerIP are both set; use only the annotation", AnnotationLoadBalancerIPs)
	case hasIPs:
		ips, err := ParseLoadBalancerIPs(ipsAnnotation)
		if err != nil {
			return fail("annotation %s: %v", AnnotationLoadBalancerIPs, err)
		}
		s.RequestedIPs = ips
	case svc.Spec.LoadBalancerIP != "":
		ip, err := netip.ParseAddr(strings.TrimSpace(svc.Spec.LoadBalancerIP))
		if err != nil {
			return fail("spec.loadBalancerIP %q is not an IP address", svc.Spec.LoadBalancerIP)
		}
		warnings = append(warnings, fmt.Sprintf("spec.loadBalancerIP is deprecated: use annotation %s", AnnotationLoadBalancerIPs))
		s.RequestedIPs = []netip.Addr{ip.Unmap()}
	}
	s.RequestedPool, _ = annotation(AnnotationAddressPool, DeprecatedAnnotationAddressPool)
	s.SharingKey, _ = annotation(AnnotationAllowSharedIP, DeprecatedAnnotationAllowSharedIP)

	for _, p := range svc.Spec.Ports {
		proto := string(p.Protocol)
		if proto == "" {
			proto = string(corev1.ProtocolTCP)
		}
		s.Ports = append(s.Ports, Port{Protocol: proto, Port: p.Port})
	}
	if svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
		s.ExternalTrafficPolicy = TrafficLocal
	} else {
		s.ExternalTrafficPolicy = TrafficCluster
	}
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ing.IP == "" {
			continue
		}
		ip, err := netip.ParseAddr(ing.IP)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("status.loadBalancer.ingress address %q is not an IP address and is ignored", ing.IP))
			continue
		}
		s.CurrentIPs = append(s.CurrentIPs, ip.Unmap())
	}
	return s, warnings, nil
}

// ParseLoadBalancerIPs parses the metallb.io/loadBalancerIPs annotation: a comma-separated
// list of at most one IPv4 and one IPv6 address.
func ParseLoadBalancerIPs(v string) ([]netip.Addr, error) {
	parts := strings.Split(v, ",")
	if len(parts) > 2 {
		return nil, fmt.Errorf("%q lists %d addresses; at most one IPv4 and one IPv6 address are allowed", v, len(parts))
	}
	ips := make([]netip.Addr, 0, len(parts))
	for _, p := range parts {
		p = strings.TrimSpace(p)
		ip, err := netip.ParseAddr(p)
		if err != nil || ip.Zone() != "" {
			return nil, fmt.Errorf("%q is not an IP address", p)
		}
		ip = ip.Unmap()
		if len(ips) == 1 && familyOf(ips[0]) == familyOf(ip) {
			return nil, fmt.Errorf("%q lists two %s addresses; at most one per family is allowed", v, familyOf(ip))
		}
		ips = append(ips, ip)
	}
	return ips, nil
}
