package operator

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/switchyard-lb/switchyard/api/v1beta1"
)

// The manifest files the operator renders, in the deploy/ directory layout.
const (
	ControllerManifest = "controller.yaml"
	SpeakerManifest    = "speaker.yaml"
)

// Container names in the manifests.
const (
	controllerContainer = "controller"
	speakerContainer    = "speaker"
)

// Manifests are the base workloads read from the deployment manifests: the controller
// Deployment and the speaker DaemonSet, as `kubectl apply -k deploy/` would create them.
type Manifests struct {
	Controller *appsv1.Deployment
	Speaker    *appsv1.DaemonSet
}

// LoadManifests reads the controller Deployment from dir/controller.yaml and the speaker
// DaemonSet from dir/speaker.yaml (other objects in those files are left to the base install).
func LoadManifests(dir string) (*Manifests, error) {
	var m Manifests
	if err := readKind(filepath.Join(dir, ControllerManifest), "Deployment", &m.Controller); err != nil {
		return nil, err
	}
	if err := readKind(filepath.Join(dir, SpeakerManifest), "DaemonSet", &m.Speaker); err != nil {
		return nil, err
	}
	if containerIndex(m.Controller.Spec.Template.Spec.Containers, controllerContainer) < 0 {
		return nil, fmt.Errorf("%s: Deployment %s has no container %q", ControllerManifest, m.Controller.Name, controllerContainer)
	}
	if containerIndex(m.Speaker.Spec.Template.Spec.Containers, speakerContainer) < 0 {
		return nil, fmt.Errorf("%s: DaemonSet %s has no container %q", SpeakerManifest, m.Speaker.Name, speakerContainer)
	}
	return &m, nil
}

// readKind decodes the single document of kind from a multi-document YAML file into *out.
func readKind[T any](path, kind string, out **T) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading manifest: %w", err)
	}
	dec := yaml.NewDocumentDecoder(io.NopCloser(bytes.NewReader(data)))
	defer dec.Close()
	buf := make([]byte, len(data)+1)
	for doc := 1; ; doc++ {
		n, err := dec.Read(buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: document %d: %w", path, doc, err)
		}
		var head struct{ Kind string }
		if err := sigsyaml.Unmarshal(buf[:n], &head); err != nil {
			return fmt.Errorf("%s: document %d: %w", path, doc, err)
		}
		if head.Kind != kind {
			continue
		}
		if *out != nil {
			return fmt.Errorf("%s: more than one %s", path, kind)
		}
		obj := new(T)
		if err := sigsyaml.UnmarshalStrict(buf[:n], obj); err != nil {
			return fmt.Errorf("%s: document %d (%s): %w", path, doc, kind, err)
		}
		*out = obj
	}
	if *out == nil {
		return fmt.Errorf("%s: no %s", path, kind)
	}
	return nil
}

// Settings are the operator's own: where the workloads go and which image they run.
type Settings struct {
	// Namespace receives the workloads (the MetalLB resource's namespace).
	Namespace string
	// Image, when set, replaces the manifests' image of the controller and speaker
	// containers (the MetalLB resource's spec.image is deprecated and ignored, as in MetalLB).
	Image string
}

// Render returns the controller Deployment and the speaker DaemonSet for a MetalLB resource:
// the base manifests with the resource's settings applied. The base is not modified.
//
//   - logLevel sets the speaker's --log-level (all and debug are debug; none is error);
//   - loadBalancerClass sets --lb-class of both;
//   - nodeSelector / controllerNodeSelector are merged over the manifests' node selectors;
//   - speakerTolerations / controllerTolerations are added to the manifests' tolerations;
//   - speakerConfig / controllerConfig set the priority class, runtime class, affinity, pod
//     annotations and the container's resources;
//   - speakerGratuitousARPInterval, when positive, sets the speaker's
//     --gratuitous-arp-interval.
func Render(base *Manifests, mlb *v1beta1.MetalLB, s Settings) (*appsv1.Deployment, *appsv1.DaemonSet, error) {
	spec := &mlb.Spec
	ctrl := base.Controller.DeepCopy()
	ctrl.Namespace = s.Namespace
	ctrl.ResourceVersion = ""
	sp := base.Speaker.DeepCopy()
	sp.Namespace = s.Namespace
	sp.ResourceVersion = ""

	ctrlPod, spPod := &ctrl.Spec.Template, &sp.Spec.Template
	ctrlC := &ctrlPod.Spec.Containers[containerIndex(ctrlPod.Spec.Containers, controllerContainer)]
	spC := &spPod.Spec.Containers[containerIndex(spPod.Spec.Containers, speakerContainer)]

	if s.Image != "" {
		ctrlC.Image, spC.Image = s.Image, s.Image
	}
	if spec.LogLevel != "" {
		level, err := speakerLogLevel(spec.LogLevel)
		if err != nil {
			return nil, nil, err
		}
		spC.Args = setFlag(spC.Args, "log-level", level)
	}
	if spec.LoadBalancerClass != "" {
		ctrlC.Args = setFlag(ctrlC.Args, "lb-class", spec.LoadBalancerClass)
		spC.Args = setFlag(spC.Args, "lb-class", spec.LoadBalancerClass)
	}
	if d := spec.SpeakerGratuitousARPInterval; d != nil && d.Duration > 0 {
		spC.Args = setFlag(spC.Args, "gratuitous-arp-interval", d.Duration.String())
	}
	applyScheduling(ctrlPod, ctrlC, spec.ControllerNodeSelector, spec.ControllerTolerations, spec.ControllerConfig)
	applyScheduling(spPod, spC, spec.SpeakerNodeSelector, spec.SpeakerTolerations, spec.SpeakerConfig)
	return ctrl, sp, nil
}

// speakerLogLevel maps MetalLB's log levels to the speaker's --log-level.
func speakerLogLevel(l v1beta1.MetalLBLogLevel) (string, error) {
	switch l {
	case v1beta1.LogLevelAll, v1beta1.LogLevelDebug:
		return "debug", nil
	case v1beta1.LogLevelInfo:
		return "info", nil
	case v1beta1.LogLevelWarn:
		return "warn", nil
	case v1beta1.LogLevelError, v1beta1.LogLevelNone:
		return "error", nil
	}
	return "", fmt.Errorf("spec.logLevel: %q is not one of all, debug, info, warn, error, none", l)
}

// applyScheduling applies a component's node selector, tolerations and pod settings.
func applyScheduling(pod *corev1.PodTemplateSpec, c *corev1.Container, nodeSelector map[string]string, tolerations []corev1.Toleration, cfg *v1beta1.Config) {
	if len(nodeSelector) > 0 {
		if pod.Spec.NodeSelector == nil {
			pod.Spec.NodeSelector = map[string]string{}
		}
		maps.Copy(pod.Spec.NodeSelector, nodeSelector)
	}
	pod.Spec.Tolerations = append(pod.Spec.Tolerations, tolerations...)
	if cfg == nil {
		return
	}
	if cfg.PriorityClassName != "" {
		pod.Spec.PriorityClassName = cfg.PriorityClassName
	}
	if cfg.RuntimeClassName != "" {
		name := cfg.RuntimeClassName
		pod.Spec.RuntimeClassName = &name
	}
	if cfg.Affinity != nil {
		pod.Spec.Affinity = cfg.Affinity.DeepCopy()
	}
	if len(cfg.Annotations) > 0 {
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		maps.Copy(pod.Annotations, cfg.Annotations)
	}
	if cfg.Resources != nil {
		c.Resources = *cfg.Resources.DeepCopy()
	}
}

// setFlag sets --name=value in args, replacing an existing --name=… or -name=….
func setFlag(args []string, name, value string) []string {
	out := make([]string, 0, len(args)+1)
	for _, a := range args {
		if strings.HasPrefix(a, "--"+name+"=") || strings.HasPrefix(a, "-"+name+"=") {
			continue
		}
		out = append(out, a)
	}
	return append(out, "--"+name+"="+value)
}

func containerIndex(cs []corev1.Container, name string) int {
	for i := range cs {
		if cs[i].Name == name {
			return i
		}
	}
	return -1
}
