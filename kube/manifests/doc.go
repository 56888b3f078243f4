// Package manifests holds the tests of the deployment manifests in deploy/: every file, and
// the kustomize base as a whole, is applied (server-side) to a real API server, and the RBAC
// rules are checked for least privilege with `kubectl auth can-i`.
package manifests
