package envtestutil

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
)

// Main is the TestMain of a package whose tests share one API server. It silences
// controller-runtime's and klog's default loggers, starts the server first when start is true
// (a package may also start it lazily and store it in *env), runs the tests, stops the server,
// and returns the exit code for os.Exit. *envErr receives the reason the server did not start,
// for SkipOrFail.
func Main(m *testing.M, start bool, env **Environment, envErr *error) int {
	ctrl.SetLogger(logr.Discard())
	klog.SetLogger(logr.Discard())
	if start {
		*env, *envErr = Start()
	}
	code := m.Run()
	if *env != nil {
		if err := (*env).Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping envtest:", err)
		}
	}
	return code
}

// WaitFor polls cond every 10 ms until it returns true, and fails t when timeout passes first,
// naming what it waited for and cond's last error.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		lastErr = err
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s (last error: %v)", timeout, what, lastErr)
}
