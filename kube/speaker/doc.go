// Package speaker connects a node's speaker to Kubernetes: it watches Services, EndpointSlices,
// Nodes, the metallb.io configuration and the heartbeat Secret for its own node, feeds them to
// core/speaker as plain inputs, and writes ServiceL2Status objects and events for what this node
// announces.
package speaker
