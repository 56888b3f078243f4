package ipam

import "errors"

// Kinds of refusal. An *AllocationError wraps exactly one of them, so callers branch with
// errors.Is(err, ipam.ErrPoolExhausted) and so on.
var (
	// ErrNotHandled: the Service's loadBalancerClass belongs to another controller.
	ErrNotHandled = errors.New("loadBalancerClass not handled")
	// ErrInvalidService: the Service itself is inconsistent (families, requests).
	ErrInvalidService = errors.New("invalid service")
	// ErrNoPool: no pool can serve the Service: none matches it, none has the family, or the
	// requested pool does not exist.
	ErrNoPool = errors.New("no pool matches")
	// ErrPoolMismatch: the pool holding the address does not serve the Service (its
	// serviceAllocation selects other Services, or the Service requested another pool).
	ErrPoolMismatch = errors.New("pool does not serve the service")
	// ErrPoolExhausted: the pools that serve the Service have no free address.
	ErrPoolExhausted = errors.New("pool exhausted")
	// ErrOutsidePools: an address is in no pool (or is one avoidBuggyIPs excludes).
	ErrOutsidePools = errors.New("address outside all pools")
	// ErrFamilyMismatch: the addresses' families are not the Service's.
	ErrFamilyMismatch = errors.New("address family mismatch")
	// ErrSharingConflict: the address is held by a Service it cannot be shared with.
	ErrSharingConflict = errors.New("sharing conflict")
	// ErrRequestChanged: the Service holds addresses but now requests other addresses or
	// another pool, so it does not keep them.
	ErrRequestChanged = errors.New("requested addresses or pool changed")
)

// AllocationError is a refusal to give (or keep) a Service's addresses.
type AllocationError struct {
	// Service is the Service refused.
	Service ServiceKey
	// Kind is one of the Err* sentinels of this package.
	Kind error
	// Detail says why, for a user: which pool, which address, which other Service.
	Detail string
	// Conflicting is the Service holding the address, for ErrSharingConflict.
	Conflicting ServiceKey
}

func (e *AllocationError) Error() string { return e.Service.String() + ": " + e.Detail }

// Unwrap returns Kind, so errors.Is matches the sentinel.
func (e *AllocationError) Unwrap() error { return e.Kind }

func refuse(svc ServiceKey, kind error, detail string) *AllocationError {
	return &AllocationError{Service: svc, Kind: kind, Detail: detail}
}
