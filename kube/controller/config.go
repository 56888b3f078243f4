package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/switchyard-lb/switchyard/api/v1beta1"
	"github.com/switchyard-lb/switchyard/core/config"
	"github.com/switchyard-lb/switchyard/core/ipam"
	"github.com/switchyard-lb/switchyard/kube/kubeconv"
	"github.com/switchyard-lb/switchyard/kube/metrics"
)

// maxListed bounds how many Services a refusal message names.
const maxListed = 10

// configState is what the controller reports in its ConfigurationState.
type configState struct {
	result    v1beta1.ConfigurationStateResult
	lastError string
}

// setupConfigLoop watches every configuration kind in the namespace; all of them map to one
// request, because the configuration is only ever built as a whole.
func (c *Controller) setupConfigLoop(mgr manager.Manager) error {
	key := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: c.opts.Namespace, Name: "configuration"}}
	toKey := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{key}
	})
	inNamespace := predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetNamespace() == c.opts.Namespace })
	// Status writes (the pool counts) change neither generation nor labels and are ignored.
	specOrLabels := predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{})
	b := builder.ControllerManagedBy(mgr).Named("switchyard-config").
		WithOptions(controller.Options{MaxConcurrentReconciles: 1, SkipNameValidation: &c.opts.SkipNameValidation})
	for _, obj := range kubeconv.ConfigObjects() {
		b = b.Watches(obj, toKey, builder.WithPredicates(inNamespace, specOrLabels))
	}
	return b.Complete(reconcile.Func(c.reconcileConfig))
}

// reconcileConfig rebuilds the configuration from the cache and switches to it when it is
// valid, new, and takes no address away from a Service.
func (c *Controller) reconcileConfig(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	log := c.log.WithName("config")
	objs, err := kubeconv.ReadObjects(ctx, c.client, c.opts.Namespace)
	if err != nil {
		metrics.UpdateErrors.Inc()
		return reconcile.Result{}, err
	}
	metrics.Updates.Inc()
	fp, err := fingerprint(objs)
	if err != nil {
		return reconcile.Result{}, err
	}

	c.mu.Lock()
	unchanged := c.alloc != nil && fp == c.fingerprint
	c.mu.Unlock()
	if unchanged {
		return reconcile.Result{}, nil
	}

	cfg, warnings, err := config.Build(objs)
	for _, w := range warnings {
		log.Info("configuration warning", "problem", w.Error())
	}
	if err != nil {
		log.Error(err, "configuration is invalid; keeping the last valid one")
		c.refuseConfig(err.Error())
		return reconcile.Result{}, nil
	}

	svcs, err := c.loadBalancerServices(ctx)
	if err != nil {
		return reconcile.Result{}, err
	}

	c.mu.Lock()
	first := c.alloc == nil
	if first {
		c.alloc = ipam.New(cfg, ipam.Options{LoadBalancerClass: c.opts.LoadBalancerClass})
		refused := c.alloc.Restore(svcs)
		log.Info("configuration loaded; assignments restored from Service status",
			"pools", len(cfg.Pools), "services", len(svcs), "restored", c.alloc.Len(), "refused", len(refused))
		for _, r := range refused {
			// Each is reconciled below and gets a new address or an AllocationFailed event.
			log.Info("Service cannot keep its addresses", "service", r.Service.String(), "reason", r.Detail)
		}
	} else {
		for i := range svcs {
			if as, ok := c.alloc.Lookup(svcs[i].Key()); ok {
				svcs[i].CurrentIPs = as.IPs
			}
		}
		if moved := renumbered(ipam.Plan(c.cfg, cfg, svcs, ipam.Options{LoadBalancerClass: c.opts.LoadBalancerClass})); len(moved) > 0 {
			c.mu.Unlock()
			msg := fmt.Sprintf("the new configuration would take addresses from %d Service(s), so it is not applied; "+
				"delete or move those Services first: %s", len(moved), strings.Join(moved, "; "))
			log.Info("configuration refused", "reason", msg)
			c.refuseConfig(msg)
			return reconcile.Result{}, nil
		}
		for _, ch := range c.alloc.SetConfig(cfg) {
			log.Info("assignment changed pool", "service", ch.Service.String(), "reason", ch.Reason)
		}
	}
	c.cfg, c.fingerprint = cfg, fp
	c.statsDirty = true
	c.configState, c.configStateDirty = configState{result: v1beta1.ConfigurationStateResultValid}, true
	c.mu.Unlock()
	metrics.ConfigLoaded.Set(1)
	metrics.ConfigStale.Set(0)

	// Every Service is looked at again under the new configuration: pools may now serve
	// Services that had none, or have room they lacked.
	var all corev1.ServiceList
	if err := c.client.List(ctx, &all, client.UnsafeDisableDeepCopy); err != nil {
		return reconcile.Result{}, err
	}
	for i := range all.Items {
		// Only the key is needed to enqueue; a bare object keeps the channel small.
		key := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: all.Items[i].Namespace, Name: all.Items[i].Name}}
		select {
		case c.resync <- event.GenericEvent{Object: key}:
		case <-ctx.Done():
			return reconcile.Result{}, ctx.Err()
		}
	}
	return reconcile.Result{}, nil
}

// refuseConfig records that the newest configuration is not in use, and why.
func (c *Controller) refuseConfig(reason string) {
	c.mu.Lock()
	c.configState, c.configStateDirty = configState{result: v1beta1.ConfigurationStateResultInvalid, lastError: reason}, true
	loaded := c.alloc != nil
	c.mu.Unlock()
	metrics.ConfigStale.Set(1)
	if !loaded {
		metrics.ConfigLoaded.Set(0)
	}
}

// renumbered lists, as "namespace/name: reason", the Services a plan takes addresses from,
// at most maxListed of them followed by a count of the rest.
func renumbered(plan []ipam.PlanEntry) []string {
	var out []string
	n := 0
	for _, e := range plan {
		if e.Action == ipam.Keep {
			continue
		}
		n++
		if len(out) < maxListed {
			out = append(out, fmt.Sprintf("%s (%s): %s", e.Service, e.Action, e.Reason))
		}
	}
	if n > maxListed {
		out = append(out, fmt.Sprintf("and %d more", n-maxListed))
	}
	return out
}

// loadBalancerServices converts every LoadBalancer Service of our class in the cache into the
// allocator's form, with its status addresses as CurrentIPs. Services that cannot be
// converted are left out here; the Service loop reports them.
func (c *Controller) loadBalancerServices(ctx context.Context) ([]ipam.Service, error) {
	// The cached objects are only read here, so they need not be copied (with tens of
	// thousands of Services the copies would be most of a configuration change's cost).
	var list corev1.ServiceList
	if err := c.client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing Services: %w", err)
	}
	var namespaces corev1.NamespaceList
	if err := c.client.List(ctx, &namespaces, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing Namespaces: %w", err)
	}
	nsLabels := make(map[string]map[string]string, len(namespaces.Items))
	for i := range namespaces.Items {
		nsLabels[namespaces.Items[i].Name] = namespaces.Items[i].Labels
	}
	out := make([]ipam.Service, 0, len(list.Items))
	for i := range list.Items {
		svc := &list.Items[i]
		if !c.isLoadBalancer(svc) || svc.DeletionTimestamp != nil {
			continue
		}
		s, _, err := ipam.ServiceFromKube(svc, nsLabels[svc.Namespace])
		if err != nil {
			continue
		}
		out = append(out, s)
	}
	return out, nil
}

// fingerprint identifies a set of configuration objects by what Build reads from them:
// kind, name, labels and spec. Status and other metadata do not change it.
func fingerprint(objs *config.Objects) (string, error) {
	type entry struct {
		Kind, Name string
		Labels     map[string]string
		Spec       any
	}
	var entries []entry
	add := func(kind string, o client.Object, spec any) {
		entries = append(entries, entry{kind, o.GetNamespace() + "/" + o.GetName(), o.GetLabels(), spec})
	}
	for i := range objs.Pools {
		add(config.KindIPAddressPool, &objs.Pools[i], objs.Pools[i].Spec)
	}
	for i := range objs.L2Advertisements {
		add(config.KindL2Advertisement, &objs.L2Advertisements[i], objs.L2Advertisements[i].Spec)
	}
	for i := range objs.BGPAdvertisements {
		add(config.KindBGPAdvertisement, &objs.BGPAdvertisements[i], objs.BGPAdvertisements[i].Spec)
	}
	for i := range objs.Peers {
		add(config.KindBGPPeer, &objs.Peers[i], objs.Peers[i].Spec)
	}
	for i := range objs.BFDProfiles {
		add(config.KindBFDProfile, &objs.BFDProfiles[i], objs.BFDProfiles[i].Spec)
	}
	for i := range objs.Communities {
		add(config.KindCommunity, &objs.Communities[i], objs.Communities[i].Spec)
	}
	// The cache lists in no particular order.
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].Kind != entries[j].Kind {
			return entries[i].Kind < entries[j].Kind
		}
		return entries[i].Name < entries[j].Name
	})
	data, err := json.Marshal(entries)
	if err != nil {
		return "", errors.New("fingerprinting the configuration: " + err.Error())
	}
	return string(data), nil
}
