package config

import (
	"strings"
)

// Error is one problem with one object: which object, which field, and why.
//
// Its text reads
//
//	IPAddressPool metallb-system/pool-a: spec.addresses[1]: "10.0.0.9-10.0.0.1": start 10.0.0.9 is after end 10.0.0.1
//
// prefixed with the document it came from when the object was read from a file.
type Error struct {
	// Source is where the object was read from ("pools.yaml#2" is the second document of
	// pools.yaml); empty for objects handed to Build directly.
	Source string
	// Kind is the object's kind, for example "BGPPeer".
	Kind string
	// Namespace and Name identify the object; both may be empty for a document that could not
	// be decoded.
	Namespace, Name string
	// Field is the path of the offending field in the object ("spec.addresses[1]"); empty when
	// the problem concerns the whole object.
	Field string
	// Reason says what is wrong, including the offending value where there is one.
	Reason string

	// position is 1 + the index of the object in its Objects slice, 0 when unknown; Load uses
	// it to find the document the object came from.
	position int
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source)
		b.WriteString(": ")
	}
	if e.Kind != "" {
		b.WriteString(e.Kind)
	} else {
		b.WriteString("object")
	}
	if e.Name != "" {
		b.WriteByte(' ')
		if e.Namespace != "" {
			b.WriteString(e.Namespace)
			b.WriteByte('/')
		}
		b.WriteString(e.Name)
	}
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

// Errors is every problem that makes a configuration invalid, in the order they were found.
// Load and Build return it as their error; use errors.As to get at the individual problems.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// errorsOrNil returns es as an error, or nil when there are none (a nil Errors stored in an
// error interface would not compare equal to nil).
func (es Errors) errorsOrNil() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// problems collects errors and warnings while a configuration is built.
type problems struct {
	errs     Errors
	warnings []*Error
}

// object names the object problems are reported against: its kind, namespace and name, and
// its index in the Objects slice of its kind.
type object struct {
	kind, namespace, name string
	index                 int
}

// reject records a problem that makes the configuration invalid.
func (p *problems) reject(o object, field, reason string) {
	p.errs = append(p.errs, o.problem(field, reason))
}

// warn records a problem worth reporting that does not make the configuration invalid.
func (p *problems) warn(o object, field, reason string) {
	p.warnings = append(p.warnings, o.problem(field, reason))
}

func (o object) problem(field, reason string) *Error {
	return &Error{Kind: o.kind, Namespace: o.namespace, Name: o.name, Field: field, Reason: reason, position: o.index + 1}
}
