package config

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/switchyard-lb/switchyard/api/v1beta1"
	"github.com/switchyard-lb/switchyard/api/v1beta2"
)

// Source is one YAML stream to load: the contents of a file, or of any other input, and the
// name problems are reported under.
type Source struct {
	Name string
	Data []byte
}

// Result is what Load found in its sources.
type Result struct {
	// Config is the validated configuration; nil when Load returned an error.
	Config *Config
	// Objects are the decoded metallb.io objects the Config was built from.
	Objects Objects
	// Services and Namespaces are the core/v1 objects found next to the configuration; they
	// let `switchyard validate --plan` show what a configuration does to a set of Services.
	Services   []*corev1.Service
	Namespaces []*corev1.Namespace
	// MetalLBs are the operator's MetalLB objects; they do not take part in the Config.
	MetalLBs []*v1beta1.MetalLB
	// Warnings are problems that do not invalidate the configuration: unknown fields, kinds
	// Switchyard does not read, references to missing BFD profiles, pools or peers.
	Warnings []*Error
}

// LoadFiles reads the named files and loads them as Load does. A file that cannot be read is
// an error of its own (not an Errors), returned before anything is validated.
func LoadFiles(paths ...string) (*Result, error) {
	sources := make([]Source, 0, len(paths))
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		sources = append(sources, Source{Name: path, Data: data})
	}
	return Load(sources...)
}

// Load decodes the multi-document YAML of the sources — the same manifests a user applies
// with kubectl, including kind: List — and builds the configuration with Build.
//
// Every problem is reported: when the configuration is invalid the error is an Errors listing
// all of them, each naming the document ("file.yaml#3" is the third document of file.yaml),
// kind, namespace/name, field and reason. The Result is never nil, so that its warnings can be
// shown either way; its Config is nil on error.
func Load(sources ...Source) (*Result, error) {
	l := &loader{res: &Result{}, origins: map[string][]string{}}
	for _, src := range sources {
		l.loadSource(src)
	}
	l.checkNamespaces()
	cfg, warnings, err := Build(&l.res.Objects)
	var buildErrs Errors
	errors.As(err, &buildErrs) // Build's only error is an Errors
	for _, e := range buildErrs {
		l.errs = append(l.errs, l.withOrigin(e))
	}
	for _, w := range warnings {
		l.warnings = append(l.warnings, l.withOrigin(w))
	}
	l.res.Warnings = l.warnings
	if err := l.errs.errorsOrNil(); err != nil {
		return l.res, err
	}
	l.res.Config = cfg
	return l.res, nil
}

type loader struct {
	problems
	res *Result
	// origins holds, per kind, the document each object in the Objects slice of that kind
	// was decoded from, in the same order.
	origins map[string][]string
}

// withOrigin sets the Source of a problem Build found.
func (l *loader) withOrigin(e *Error) *Error {
	if origins := l.origins[e.Kind]; e.Source == "" && e.position > 0 && e.position <= len(origins) {
		e.Source = origins[e.position-1]
	}
	return e
}

func (l *loader) loadSource(src Source) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(src.Data)))
	for n := 1; ; n++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return
		}
		where := fmt.Sprintf("%s#%d", src.Name, n)
		if err != nil {
			l.errs = append(l.errs, &Error{Source: where, Reason: "reading YAML: " + err.Error()})
			return
		}
		data, err := yaml.YAMLToJSON(doc)
		if err != nil {
			l.errs = append(l.errs, &Error{Source: where, Reason: "invalid YAML: " + err.Error()})
			continue
		}
		l.decodeDocument(where, data)
	}
}

// header is the part of every Kubernetes object that says what it is.
type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// decodeDocument decodes one document, given as JSON, by its apiVersion and kind.
func (l *loader) decodeDocument(where string, data []byte) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || bytes.Equal(data, []byte("null")) {
		return // an empty document, e.g. after a trailing "---"
	}
	if data[0] != '{' {
		l.errs = append(l.errs, &Error{Source: where, Reason: "not an object: a document must be a YAML mapping with apiVersion and kind"})
		return
	}
	var h header
	if err := json.Unmarshal(data, &h); err != nil {
		l.errs = append(l.errs, &Error{Source: where, Reason: "cannot read apiVersion, kind and metadata: " + err.Error()})
		return
	}
	e := &Error{Source: where, Kind: h.Kind, Namespace: h.Metadata.Namespace, Name: h.Metadata.Name}
	if h.APIVersion == "" || h.Kind == "" {
		e.Reason = "missing apiVersion or kind"
		l.errs = append(l.errs, e)
		return
	}

	switch h.APIVersion + " " + h.Kind {
	case "metallb.io/v1beta1 IPAddressPool":
		decodeAppend(l, e, data, &l.res.Objects.Pools, where)
	case "metallb.io/v1beta1 L2Advertisement":
		decodeAppend(l, e, data, &l.res.Objects.L2Advertisements, where)
	case "metallb.io/v1beta1 BGPAdvertisement":
		decodeAppend(l, e, data, &l.res.Objects.BGPAdvertisements, where)
	case "metallb.io/v1beta2 BGPPeer":
		decodeAppend(l, e, data, &l.res.Objects.Peers, where)
	case "metallb.io/v1beta1 BGPPeer":
		var old v1beta1.BGPPeer
		var peer v1beta2.BGPPeer
		if !l.decode(e, data, &old) {
			break
		}
		if err := old.ConvertToV1beta2(&peer); err != nil {
			e.Reason = err.Error()
			l.errs = append(l.errs, e)
			break
		}
		l.res.Objects.Peers = append(l.res.Objects.Peers, peer)
		l.origins[h.Kind] = append(l.origins[h.Kind], where)
	case "metallb.io/v1beta1 BFDProfile":
		decodeAppend(l, e, data, &l.res.Objects.BFDProfiles, where)
	case "metallb.io/v1beta1 Community":
		decodeAppend(l, e, data, &l.res.Objects.Communities, where)
	case "metallb.io/v1beta1 MetalLB":
		obj := &v1beta1.MetalLB{}
		if l.decode(e, data, obj) {
			l.res.MetalLBs = append(l.res.MetalLBs, obj)
		}
	// Status objects are written by Switchyard itself: they are checked, and not used.
	case "metallb.io/v1beta1 ServiceL2Status":
		l.decode(e, data, &v1beta1.ServiceL2Status{})
	case "metallb.io/v1beta1 ServiceBGPStatus":
		l.decode(e, data, &v1beta1.ServiceBGPStatus{})
	case "metallb.io/v1beta1 ConfigurationState":
		l.decode(e, data, &v1beta1.ConfigurationState{})
	case "v1 Service":
		obj := &corev1.Service{}
		if l.decode(e, data, obj) {
			l.res.Services = append(l.res.Services, obj)
		}
	case "v1 Namespace":
		obj := &corev1.Namespace{}
		if l.decode(e, data, obj) {
			l.res.Namespaces = append(l.res.Namespaces, obj)
		}
	case "v1 Secret":
		decodeAppend(l, e, data, &l.res.Objects.Secrets, where)
	case "v1 List":
		var list struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(data, &list); err != nil {
			e.Reason = "items: " + err.Error()
			l.errs = append(l.errs, e)
			break
		}
		for i, item := range list.Items {
			l.decodeDocument(fmt.Sprintf("%s items[%d]", where, i), item)
		}
		return
	default:
		if group, _, _ := strings.Cut(h.APIVersion, "/"); group == v1beta1.GroupVersion.Group {
			e.Reason = fmt.Sprintf("unknown kind %s in %s: metallb.io defines IPAddressPool, L2Advertisement, BGPAdvertisement, BFDProfile, Community, MetalLB and the status kinds in v1beta1, BGPPeer in v1beta1 and v1beta2", h.Kind, h.APIVersion)
			if h.Kind == "AddressPool" {
				e.Reason = "AddressPool was removed in MetalLB 0.13: use IPAddressPool with L2Advertisement or BGPAdvertisement"
			}
			l.errs = append(l.errs, e)
			return
		}
		e.Reason = fmt.Sprintf("%s %s is not a kind Switchyard reads; ignored", h.APIVersion, h.Kind)
		l.warnings = append(l.warnings, e)
	}
}

// checkNamespaces warns about configuration objects outside the namespace most of them are
// in: Switchyard, like MetalLB, reads only the namespace it runs in, so such objects would be
// ignored once applied. Objects without a namespace are not counted; kubectl puts them in the
// namespace it is told to.
func (l *loader) checkNamespaces() {
	o := &l.res.Objects
	type located struct {
		kind, namespace, name string
		index                 int
	}
	var all []located
	add := func(kind string, i int, m metav1.ObjectMeta) {
		if m.Namespace != "" {
			all = append(all, located{kind, m.Namespace, m.Name, i})
		}
	}
	for i := range o.Pools {
		add(KindIPAddressPool, i, o.Pools[i].ObjectMeta)
	}
	for i := range o.L2Advertisements {
		add(KindL2Advertisement, i, o.L2Advertisements[i].ObjectMeta)
	}
	for i := range o.BGPAdvertisements {
		add(KindBGPAdvertisement, i, o.BGPAdvertisements[i].ObjectMeta)
	}
	for i := range o.Peers {
		add(KindBGPPeer, i, o.Peers[i].ObjectMeta)
	}
	for i := range o.BFDProfiles {
		add(KindBFDProfile, i, o.BFDProfiles[i].ObjectMeta)
	}
	for i := range o.Communities {
		add(KindCommunity, i, o.Communities[i].ObjectMeta)
	}
	count := map[string]int{}
	usual := ""
	for _, obj := range all {
		count[obj.namespace]++
		if c := count[obj.namespace]; c > count[usual] || (c == count[usual] && obj.namespace < usual) {
			usual = obj.namespace
		}
	}
	for _, obj := range all {
		if obj.namespace != usual {
			w := object{obj.kind, obj.namespace, obj.name, obj.index}.problem("metadata.namespace",
				fmt.Sprintf("%q differs from %q, the namespace of the other configuration objects; Switchyard reads only the namespace it runs in", obj.namespace, usual))
			l.warnings = append(l.warnings, l.withOrigin(w))
		}
	}
}

// decodeAppend decodes data as a T and, when it decodes, appends it to list and records the
// document it came from.
func decodeAppend[T any](l *loader, e *Error, data []byte, list *[]T, where string) {
	var obj T
	if l.decode(e, data, &obj) {
		*list = append(*list, obj)
		l.origins[e.Kind] = append(l.origins[e.Kind], where)
	}
}

// strictProblem and typeMismatch match the errors of sigs.k8s.io/json that name a field, so
// that the field can be reported on its own: `unknown field "spec.x"` and `json: cannot
// unmarshal string into Go struct field IPAddressPoolSpec.spec.autoAssign of type bool`.
var (
	strictProblem = regexp.MustCompile(`^(unknown|duplicate) field "(.*)"$`)
	typeMismatch  = regexp.MustCompile(`^json: cannot unmarshal (.+) into Go struct field [^.\s]+\.(\S+) of type (\S+)$`)
)

// decode decodes data into obj, case-sensitively as the API server does. A value of the wrong
// type is an error; unknown and duplicate fields are warnings, one per field. It reports
// whether obj was decoded.
func (l *loader) decode(e *Error, data []byte, obj any) bool {
	strictErrs, err := kjson.UnmarshalStrict(data, obj, kjson.DisallowUnknownFields, kjson.DisallowDuplicateFields)
	if err != nil {
		if m := typeMismatch.FindStringSubmatch(err.Error()); m != nil {
			e.Field, e.Reason = m[2], fmt.Sprintf("wrong type: got %s, want %s", m[1], m[3])
		} else {
			e.Reason = err.Error()
		}
		l.errs = append(l.errs, e)
		return false
	}
	for _, se := range strictErrs {
		w := *e
		if m := strictProblem.FindStringSubmatch(se.Error()); m != nil {
			w.Field, w.Reason = m[2], m[1]+" field; ignored"
		} else {
			w.Reason = se.Error()
		}
		l.warnings = append(l.warnings, &w)
	}
	return true
}
