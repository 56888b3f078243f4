// Package liveness detects, on the data path, which speakers are alive on each network segment.
//
// Every speaker broadcasts a small heartbeat frame (EtherType 0x88b5) on each interface that
// carries VIPs, every Interval (100 ms by default). Heartbeats carry the sender's node name,
// incarnation and sequence number and are authenticated with HMAC-SHA256 over a secret shared by
// all speakers; forged, corrupted and replayed frames are counted and dropped. A Detector turns
// the heartbeats it hears into per-segment liveness: a peer is dead on a segment Multiplier
// intervals after it was last heard there, alive again after Rise heartbeats in a row, and dead at
// once when it sends a leave frame on graceful shutdown.
//
// Liveness is deliberately per segment and independent of the Kubernetes API: a node whose NIC
// on a segment has failed cannot answer ARP there, so it must stop being a candidate for that
// segment's VIPs even while its kubelet still reports Ready.
//
// The package does no I/O and keeps no clock: frames and the current time are passed in, frames
// to send and liveness events come back, and NextDeadline says when to call Tick again.
package liveness
