package config

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/switchyard-lb/switchyard/api/v1beta1"
	"github.com/switchyard-lb/switchyard/api/v1beta2"
)

// Objects are the decoded metallb.io objects a configuration is built from: what Load reads
// from files, or what the controller and the webhook read from the API server. BGPPeers are
// in their storage version, v1beta2 (convert v1beta1 peers with
// v1beta1.BGPPeer.ConvertToV1beta2).
type Objects struct {
	Pools             []v1beta1.IPAddressPool
	L2Advertisements  []v1beta1.L2Advertisement
	BGPAdvertisements []v1beta1.BGPAdvertisement
	Peers             []v1beta2.BGPPeer
	BFDProfiles       []v1beta1.BFDProfile
	Communities       []v1beta1.Community
	// Secrets are the Secrets known to hold BGP passwords. A peer's passwordSecret is checked
	// against them when it is among them; a Secret that is absent is not an error, because
	// the speaker reads it from the cluster.
	Secrets []corev1.Secret
}

// Kind names, as they appear in manifests and errors.
const (
	KindIPAddressPool    = "IPAddressPool"
	KindL2Advertisement  = "L2Advertisement"
	KindBGPAdvertisement = "BGPAdvertisement"
	KindBGPPeer          = "BGPPeer"
	KindBFDProfile       = "BFDProfile"
	KindCommunity        = "Community"
)
