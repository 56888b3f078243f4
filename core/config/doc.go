// Package config turns metallb.io manifests into one validated configuration model.
//
// It loads the same multi-document YAML a user applies with kubectl, rejects everything
// MetalLB's webhooks reject with an error naming the kind, namespace/name, field and reason, and
// resolves references (advertisements to pools, peers and communities) so that the rest of
// core/ works on plain, checked values.
package config
