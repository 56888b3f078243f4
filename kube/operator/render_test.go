package operator

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/switchyard-lb/switchyard/api/v1beta1"
)

func loadTestManifests(t *testing.T) *Manifests {
	t.Helper()
	m, err := LoadManifests(filepath.Join("testdata", "manifests"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLoadManifestsOfTheRepository(t *testing.T) {
	m, err := LoadManifests(filepath.Join("..", "..", "deploy"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Controller.Name != "switchyard-controller" || m.Speaker.Name != "switchyard-speaker" {
		t.Errorf("loaded Deployment %q and DaemonSet %q", m.Controller.Name, m.Speaker.Name)
	}
}

func TestRenderDefaults(t *testing.T) {
	base := loadTestManifests(t)
	ctrl, sp, err := Render(base, &v1beta1.MetalLB{}, Settings{Namespace: "lb"})
	if err != nil {
		t.Fatal(err)
	}
	if ctrl.Namespace != "lb" || sp.Namespace != "lb" {
		t.Errorf("namespaces %q, %q; want lb", ctrl.Namespace, sp.Namespace)
	}
	// Nothing set: the manifests as they are.
	if diff := cmp.Diff(base.Controller.Spec, ctrl.Spec); diff != "" {
		t.Errorf("controller spec changed (-base +rendered)\n%s", diff)
	}
	if diff := cmp.Diff(base.Speaker.Spec, sp.Spec); diff != "" {
		t.Errorf("speaker spec changed (-base +rendered)\n%s", diff)
	}
	if base.Controller.Namespace != "metallb-system" {
		t.Errorf("Render modified the base manifests")
	}
}

func TestRenderAppliesTheResource(t *testing.T) {
	base := loadTestManifests(t)
	runtimeClass := "kata"
	mlb := &v1beta1.MetalLB{Spec: v1beta1.MetalLBSpec{
		LogLevel:                     v1beta1.LogLevelAll,
		LoadBalancerClass:            "example.com/lb",
		SpeakerNodeSelector:          map[string]string{"role": "edge", "kubernetes.io/os": "linux"},
		SpeakerTolerations:           []corev1.Toleration{{Key: "edge", Operator: corev1.TolerationOpExists}},
		ControllerNodeSelector:       map[string]string{"role": "infra"},
		ControllerTolerations:        []corev1.Toleration{{Key: "infra", Operator: corev1.TolerationOpEqual, Value: "yes", Effect: corev1.TaintEffectNoSchedule}},
		SpeakerGratuitousARPInterval: &metav1.Duration{Duration: 10 * time.Second},
		SpeakerConfig: &v1beta1.Config{
			PriorityClassName: "system-node-critical",
			RuntimeClassName:  runtimeClass,
			Annotations:       map[string]string{"team": "net"},
			Resources:         &corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}},
		},
		ControllerConfig: &v1beta1.Config{PriorityClassName: "system-cluster-critical"},
	}}
	ctrl, sp, err := Render(base, mlb, Settings{Namespace: "lb", Image: "registry.example.com/switchyard:v1"})
	if err != nil {
		t.Fatal(err)
	}

	cs := ctrl.Spec.Template.Spec
	if diff := cmp.Diff([]string{"controller", "--namespace=$(POD_NAMESPACE)", "--lb-class=example.com/lb"}, cs.Containers[0].Args); diff != "" {
		t.Errorf("controller args (-want +got)\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"kubernetes.io/os": "linux", "role": "infra"}, cs.NodeSelector); diff != "" {
		t.Errorf("controller node selector (-want +got)\n%s", diff)
	}
	if diff := cmp.Diff(mlb.Spec.ControllerTolerations, cs.Tolerations); diff != "" {
		t.Errorf("controller tolerations (-want +got)\n%s", diff)
	}
	if cs.PriorityClassName != "system-cluster-critical" || cs.Containers[0].Image != "registry.example.com/switchyard:v1" {
		t.Errorf("controller priority class %q, image %q", cs.PriorityClassName, cs.Containers[0].Image)
	}

	ss := sp.Spec.Template.Spec
	wantArgs := []string{"speaker", "--node-name=$(NODE_NAME)", "--log-level=debug", "--lb-class=example.com/lb", "--gratuitous-arp-interval=10s"}
	if diff := cmp.Diff(wantArgs, ss.Containers[0].Args); diff != "" {
		t.Errorf("speaker args (-want +got)\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"kubernetes.io/os": "linux", "role": "edge"}, ss.NodeSelector); diff != "" {
		t.Errorf("speaker node selector (-want +got)\n%s", diff)
	}
	wantTolerations := []corev1.Toleration{
		{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: "edge", Operator: corev1.TolerationOpExists},
	}
	if diff := cmp.Diff(wantTolerations, ss.Tolerations); diff != "" {
		t.Errorf("speaker tolerations (-want +got)\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"prometheus.io/scrape": "true", "team": "net"}, sp.Spec.Template.Annotations); diff != "" {
		t.Errorf("speaker pod annotations (-want +got)\n%s", diff)
	}
	if ss.PriorityClassName != "system-node-critical" || ss.RuntimeClassName == nil || *ss.RuntimeClassName != "kata" {
		t.Errorf("speaker priority class %q, runtime class %v", ss.PriorityClassName, ss.RuntimeClassName)
	}
	if got := ss.Containers[0].Resources.Limits.Memory().String(); got != "64Mi" {
		t.Errorf("speaker memory limit %s, want 64Mi", got)
	}
}

func TestRenderLogLevels(t *testing.T) {
	base := loadTestManifests(t)
	for level, want := range map[v1beta1.MetalLBLogLevel]string{
		v1beta1.LogLevelAll: "debug", v1beta1.LogLevelDebug: "debug", v1beta1.LogLevelInfo: "info",
		v1beta1.LogLevelWarn: "warn", v1beta1.LogLevelError: "error", v1beta1.LogLevelNone: "error",
	} {
		_, sp, err := Render(base, &v1beta1.MetalLB{Spec: v1beta1.MetalLBSpec{LogLevel: level}}, Settings{Namespace: "lb"})
		if err != nil {
			t.Fatal(err)
		}
		args := sp.Spec.Template.Spec.Containers[0].Args
		if args[len(args)-1] != "--log-level="+want || strings.Count(strings.Join(args, " "), "--log-level") != 1 {
			t.Errorf("logLevel %s: speaker args %q, want one --log-level=%s", level, args, want)
		}
	}
	_, _, err := Render(base, &v1beta1.MetalLB{Spec: v1beta1.MetalLBSpec{LogLevel: "chatty"}}, Settings{Namespace: "lb"})
	if want := `spec.logLevel: "chatty" is not one of all, debug, info, warn, error, none`; err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
}

func TestLoadManifestsErrors(t *testing.T) {
	write := func(dir, name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const goodSpeaker = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: s}\nspec:\n  template:\n    spec:\n      containers: [{name: speaker}]\n"
	for _, tc := range []struct {
		name, controller, speaker, want string
	}{
		{"no Deployment", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n", goodSpeaker, "controller.yaml: no Deployment"},
		{"wrong container", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: c}\nspec:\n  template:\n    spec:\n      containers: [{name: main}]\n",
			goodSpeaker, `controller.yaml: Deployment c has no container "controller"`},
		{"unknown field", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: c}\nspec: {replicaz: 2}\n", goodSpeaker,
			`controller.yaml: document 1 (Deployment): error unmarshaling JSON: while decoding JSON: json: unknown field "replicaz"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			write(dir, ControllerManifest, tc.controller)
			write(dir, SpeakerManifest, tc.speaker)
			_, err := LoadManifests(dir)
			if err == nil || !strings.HasSuffix(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to end in %q", err, tc.want)
			}
		})
	}
	if _, err := LoadManifests(t.TempDir()); err == nil || !strings.Contains(err.Error(), "reading manifest: open") {
		t.Errorf("missing files: error %v", err)
	}
}
