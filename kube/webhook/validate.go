// Package webhook holds Switchyard's validating admission webhooks for every metallb.io
// configuration kind, and the serving certificate they need, generated and rotated by the
// controller itself (no cert-manager).
//
// A webhook does not check an object on its own: it builds the whole configuration of the
// namespace with the new object in place (or, for a delete, without it) through core/config,
// the same code `switchyard validate` runs on files, and refuses the change when that brings
// in a problem the configuration did not already have. So the webhook and `switchyard
// validate` give the same verdict with the same message, and an object is refused for what
// it does to the configuration, for example a pool overlapping another one.
package webhook

import (
	"context"
	"fmt"
	"strings"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/switchyard-lb/switchyard/api/v1beta1"
	"github.com/switchyard-lb/switchyard/api/v1beta2"
	"github.com/switchyard-lb/switchyard/core/config"
	"github.com/switchyard-lb/switchyard/kube/kubeconv"
)

// Validator checks changes to metallb.io objects against the rest of the configuration.
type Validator struct {
	// Reader lists the configuration objects. Use a live reader (the manager's APIReader), not
	// the cache: `kubectl apply` of a pool and an advertisement in one file sends the second
	// request before a cache may have seen the first object, and the verdict would depend on
	// that race. Configuration objects are few and admissions rare, so live lists are cheap.
	Reader client.Reader
	// Namespace is the namespace the configuration is read from; objects elsewhere are
	// accepted with a warning that Switchyard ignores them.
	Namespace string
	Log       logr.Logger
}

// Path is the URL path of the webhook for a kind and version, in MetalLB's form
// (/validate-metallb-io-v1beta1-ipaddresspool). deploy/webhook.yaml uses the same paths.
func Path(version, kind string) string {
	return "/validate-metallb-io-" + version + "-" + strings.ToLower(kind)
}

// Register adds a webhook for every metallb.io configuration kind to srv.
func (v *Validator) Register(srv webhook.Server, scheme *runtime.Scheme) {
	srv.Register(Path("v1beta1", config.KindIPAddressPool), admission.WithValidator(scheme, kindValidator[*v1beta1.IPAddressPool]{v}))
	srv.Register(Path("v1beta1", config.KindL2Advertisement), admission.WithValidator(scheme, kindValidator[*v1beta1.L2Advertisement]{v}))
	srv.Register(Path("v1beta1", config.KindBGPAdvertisement), admission.WithValidator(scheme, kindValidator[*v1beta1.BGPAdvertisement]{v}))
	srv.Register(Path("v1beta1", config.KindBGPPeer), admission.WithValidator(scheme, kindValidator[*v1beta1.BGPPeer]{v}))
	srv.Register(Path("v1beta2", config.KindBGPPeer), admission.WithValidator(scheme, kindValidator[*v1beta2.BGPPeer]{v}))
	srv.Register(Path("v1beta1", config.KindBFDProfile), admission.WithValidator(scheme, kindValidator[*v1beta1.BFDProfile]{v}))
	srv.Register(Path("v1beta1", config.KindCommunity), admission.WithValidator(scheme, kindValidator[*v1beta1.Community]{v}))
}

// kindValidator adapts Validator to controller-runtime's typed validator for one kind.
type kindValidator[T client.Object] struct{ v *Validator }

func (k kindValidator[T]) ValidateCreate(ctx context.Context, obj T) (admission.Warnings, error) {
	return k.v.Check(ctx, obj, false)
}

func (k kindValidator[T]) ValidateUpdate(ctx context.Context, _, obj T) (admission.Warnings, error) {
	return k.v.Check(ctx, obj, false)
}

func (k kindValidator[T]) ValidateDelete(ctx context.Context, obj T) (admission.Warnings, error) {
	return k.v.Check(ctx, obj, true)
}

// Check decides on creating or updating obj (deleting it when deleting is true). It
// returns an error, whose text is the admission message, when the change brings in problems:
// one line per problem, each exactly as `switchyard validate` prints it after the file name.
// Problems the configuration already had are not held against obj.
func (v *Validator) Check(ctx context.Context, obj client.Object, deleting bool) (admission.Warnings, error) {
	if obj.GetNamespace() != v.Namespace {
		return admission.Warnings{fmt.Sprintf("Switchyard reads metallb.io objects from namespace %q only; this one is ignored", v.Namespace)}, nil
	}
	objs, err := kubeconv.ReadObjects(ctx, v.Reader, v.Namespace)
	if err != nil {
		return nil, fmt.Errorf("reading the current configuration: %w", err)
	}
	_, oldWarnings, oldErr := config.Build(objs)
	before := problemSet(oldErr, oldWarnings)

	if deleting {
		err = kubeconv.Remove(objs, obj)
	} else {
		err = kubeconv.Upsert(objs, obj)
	}
	if err != nil {
		return nil, err
	}
	_, newWarnings, newErr := config.Build(objs)

	var warnings admission.Warnings
	for _, w := range newWarnings {
		if !before[w.Error()] {
			warnings = append(warnings, w.Error())
		}
	}
	var problems config.Errors
	if es, ok := newErr.(config.Errors); ok {
		for _, e := range es {
			if !before[e.Error()] {
				problems = append(problems, e)
			}
		}
	}
	if len(problems) > 0 {
		v.Log.V(1).Info("refused", "kind", fmt.Sprintf("%T", obj), "namespace", obj.GetNamespace(), "name", obj.GetName(), "problems", len(problems))
		return warnings, problems
	}
	return warnings, nil
}

// problemSet returns the text of every problem and warning, to tell new ones from old ones.
func problemSet(err error, warnings []*config.Error) map[string]bool {
	set := map[string]bool{}
	if es, ok := err.(config.Errors); ok {
		for _, e := range es {
			set[e.Error()] = true
		}
	}
	for _, w := range warnings {
		set[w.Error()] = true
	}
	return set
}
