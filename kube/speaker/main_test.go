package speaker_test

import (
	"context"
	"os"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchyard-lb/switchyard/kube/envtestutil"
)

// The API server is shared by every test of the package and started by the first test that
// needs one, so the tests that do not (conversions) run without it.
var (
	envOnce sync.Once
	env     *envtestutil.Environment
	envErr  error
)

// TestMain starts no API server: requireEnv starts it when the first test needs one.
func TestMain(m *testing.M) { os.Exit(envtestutil.Main(m, false, &env, &envErr)) }

// requireEnv returns a client of the shared API server, or skips (fails under CI=true).
func requireEnv(t testing.TB) client.Client {
	t.Helper()
	envOnce.Do(func() { env, envErr = envtestutil.Start() })
	if envErr != nil {
		envtestutil.SkipOrFail(t, envErr)
	}
	c, err := client.New(env.Config, client.Options{Scheme: envtestutil.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// createNamespace creates a namespace, ignoring one that exists.
func createNamespace(t testing.TB, c client.Client, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}
