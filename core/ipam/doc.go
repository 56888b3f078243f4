// Package ipam is Switchyard's address allocator: it gives LoadBalancer Services addresses from
// the configured IPAddressPools, following MetalLB's rules so that existing metallb.io
// configurations and Service annotations behave as they always have.
//
// The rules, in the order the allocator applies them:
//
//   - loadBalancerClass: a Service whose class is not the controller's is left alone.
//   - An address the Service already holds (its status, restored after a restart) stays with
//     it while it is still valid: inside a pool that serves the Service, of the right family,
//     matching any requested addresses or pool, and shareable with its co-holders.
//   - Requested addresses (metallb.io/loadBalancerIPs, the deprecated metallb.universe.tf
//     form, or spec.loadBalancerIP) are given exactly or refused with the reason.
//   - A requested pool (metallb.io/address-pool) is the only pool tried.
//   - Otherwise the autoAssign pools whose serviceAllocation selects the Service are tried by
//     priority (lower first, unset last, then by name), and only when none of them has room,
//     the autoAssign pools without serviceAllocation, by name.
//   - Within a pool the lowest free address is taken; avoidBuggyIPs skips IPv4 addresses
//     ending in .0 and .255. A Service with metallb.io/allow-shared-ip first joins an address
//     already shared under the same key when the sharing rules allow it.
//   - Sharing (MetalLB's rules): every holder has the same non-empty sharing key, no two
//     holders use the same protocol and port, and either all holders have
//     externalTrafficPolicy Cluster or all have Local with the same pod selector.
//   - Dual-stack: RequireDualStack needs both families from one pool; PreferDualStack takes
//     both from one pool when it can, else one address of the primary family, else one of the
//     secondary family, and later adds the missing family from the same pool when room appears.
//
// How a controller drives it: at start, New with the configuration, then Restore with every
// Service (their status addresses), then Allocate for each Service; Release when a Service is
// deleted or stops being a LoadBalancer. On a configuration change, Plan shows what would
// happen, SetConfig switches, and Allocate runs again for every Service. Stats feeds the
// IPAddressPool status and metrics.
//
// Every refusal is an *AllocationError whose Kind is one of the Err* sentinels, so callers
// test it with errors.Is and show its message to users unchanged.
//
// The allocator is pure: no I/O, no goroutines, no clock. It is not safe for concurrent use;
// the controller owns one and serialises calls.
//
// Cost: each pool range keeps a cursor to the lowest never-examined address and a min-heap of
// addresses released below it, so taking the next address is amortised O(1) and a release is
// O(log n); nothing is materialised per address of a pool, so a /64 costs as little as a /30.
// An assignment costs about 55 bytes (see BenchmarkAllocate).
package ipam
