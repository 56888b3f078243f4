package main

import (
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"text/tabwriter"

	corev1 "k8s.io/api/core/v1"

	"github.com/switchyard-lb/switchyard/core/config"
	"github.com/switchyard-lb/switchyard/core/ipam"
)

// planServices converts the LoadBalancer Services found in the old and new files into the
// allocator's form. A Service in both sets is taken from the new files. Namespace labels come
// from the Namespaces in either set. Services that cannot be understood are reported as
// warnings and left out.
//
// Manifests written by hand rarely carry spec.ipFamilies or a cluster IP, which the API
// server fills in; such Services are planned as on an IPv4-primary cluster: IPv4, plus IPv6
// when their ipFamilyPolicy asks for dual stack.
func planServices(oldRes, newRes *config.Result, stderr io.Writer) []ipam.Service {
	nsLabels := map[string]map[string]string{}
	services := map[string]*corev1.Service{}
	for _, res := range []*config.Result{oldRes, newRes} {
		for _, ns := range res.Namespaces {
			nsLabels[ns.Name] = ns.Labels
		}
		for _, svc := range res.Services {
			if svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
				services[svc.Namespace+"/"+svc.Name] = svc
			}
		}
	}
	keys := make([]string, 0, len(services))
	for k := range services {
		keys = append(keys, k)
	}
	sort.Strings(keys)

	var out []ipam.Service
	for _, k := range keys {
		svc := withDefaultFamilies(services[k])
		s, warnings, err := ipam.ServiceFromKube(svc, nsLabels[svc.Namespace])
		for _, w := range warnings {
			fmt.Fprintf(stderr, "warning: Service %s: %s\n", k, w)
		}
		if err != nil {
			fmt.Fprintf(stderr, "warning: %v; left out of the plan\n", err)
			continue
		}
		out = append(out, s)
	}
	return out
}

// withDefaultFamilies returns svc with spec.ipFamilies filled in as an IPv4-primary API server
// would, when neither ipFamilies nor a cluster IP says the family.
func withDefaultFamilies(svc *corev1.Service) *corev1.Service {
	if len(svc.Spec.IPFamilies) > 0 || len(svc.Spec.ClusterIPs) > 0 || svc.Spec.ClusterIP != "" {
		return svc
	}
	svc = svc.DeepCopy()
	svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
	if p := svc.Spec.IPFamilyPolicy; p != nil && *p != corev1.IPFamilyPolicySingleStack {
		svc.Spec.IPFamilies = append(svc.Spec.IPFamilies, corev1.IPv6Protocol)
	}
	return svc
}

// assignUnderOld gives the Services that have no status addresses in the files the addresses
// the old configuration would assign them, so that the plan shows what happens to them too.
// Services with status addresses keep them, as a restarting controller would.
func assignUnderOld(oldCfg *config.Config, svcs []ipam.Service, stderr io.Writer) {
	alloc := ipam.New(oldCfg, ipam.Options{})
	for _, refused := range alloc.Restore(svcs) {
		fmt.Fprintf(stderr, "warning: under the old configuration: %v\n", refused)
	}
	for i := range svcs {
		if len(svcs[i].CurrentIPs) > 0 {
			continue
		}
		as, err := alloc.Allocate(&svcs[i])
		if err != nil {
			fmt.Fprintf(stderr, "warning: under the old configuration: %v\n", err)
			continue
		}
		svcs[i].CurrentIPs = as.IPs
	}
}

// printPlan writes the IPAM plan as a table.
func printPlan(w io.Writer, entries []ipam.PlanEntry) {
	counts := map[ipam.Action]int{}
	for _, e := range entries {
		counts[e.Action]++
	}
	fmt.Fprintf(w, "\nIPAM plan: %d kept, %d reassigned, %d released.\n",
		counts[ipam.Keep], counts[ipam.Reassign], counts[ipam.Release])
	if len(entries) == 0 {
		return
	}
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	row(tw, "SERVICE", "ACTION", "OLD", "NEW", "WHY")
	for _, e := range entries {
		row(tw, e.Service.String(), string(e.Action), addrsInPool(e.OldIPs, e.OldPool), addrsInPool(e.NewIPs, e.NewPool), e.Reason)
	}
	tw.Flush()
	writeTrimmed(w, table.String())
}

func addrsInPool(ips []netip.Addr, pool string) string {
	if len(ips) == 0 {
		return "-"
	}
	parts := make([]string, len(ips))
	for i, ip := range ips {
		parts[i] = ip.String()
	}
	s := strings.Join(parts, ",")
	if pool != "" {
		s += " (" + pool + ")"
	}
	return s
}
