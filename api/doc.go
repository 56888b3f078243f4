// Package api holds the Go types of the metallb.io custom resources that Switchyard reads.
//
// The types mirror MetalLB's API field for field (same Go field meaning, same JSON names, same
// defaults), so that manifests written for MetalLB apply to Switchyard unchanged. Subpackages
// are one per API version: v1beta1 holds every kind, v1beta2 holds the storage version of
// BGPPeer. CRDs and deepcopy code are generated from the kubebuilder markers with
// `make generate`.
package api
