// Package trace records what happens in a simulation as JSON lines, one event per line:
//
//	{"t":0.001250000,"c":"switch/lan","e":"flood","in":"node-a/eth0","src":"02:..","len":60}
//
// t is virtual time in seconds since the simulation started (nine decimals, so nanoseconds are
// exact), c the component, e the event, followed by the event's fields in the order they were
// given. Nothing in a line depends on wall time, map order or pointer values, so two runs of the
// same scenario with the same seed write byte-identical traces.
//
// Components append with Emit, or log through Logger, which turns a log/slog record into a trace
// event stamped with virtual time (slog's own wall-clock timestamp is ignored). A nil *Trace
// accepts every call and records nothing.
package trace

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Trace writes events to an io.Writer. It is safe for concurrent use.
type Trace struct {
	mu      sync.Mutex
	w       *bufio.Writer
	elapsed func() time.Duration
	line    []byte
	err     error
	events  uint64
}

// New returns a trace that writes to w and stamps events with elapsed(), the virtual time since
// the start of the simulation.
func New(w io.Writer, elapsed func() time.Duration) *Trace {
	return &Trace{w: bufio.NewWriterSize(w, 64<<10), elapsed: elapsed}
}

// Enabled reports whether events are recorded, so callers can skip building costly fields.
func (t *Trace) Enabled() bool { return t != nil }

// Emit records one event.
func (t *Trace) Emit(component, event string, attrs ...slog.Attr) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.begin(component, event)
	for _, a := range attrs {
		t.line = appendAttr(t.line, "", a)
	}
	t.end()
}

// begin starts a line in t.line. Callers hold t.mu.
func (t *Trace) begin(component, event string) {
	b := append(t.line[:0], `{"t":`...)
	b = appendSeconds(b, t.elapsed())
	b = append(b, `,"c":`...)
	b = appendString(b, component)
	b = append(b, `,"e":`...)
	b = appendString(b, event)
	t.line = b
}

// end finishes the line in t.line and writes it. Callers hold t.mu.
func (t *Trace) end() {
	t.line = append(t.line, '}', '\n')
	t.events++
	if t.err != nil {
		return
	}
	if _, err := t.w.Write(t.line); err != nil {
		t.err = err
	}
}

// Events returns the number of events recorded so far.
func (t *Trace) Events() uint64 {
	if t == nil {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.events
}

// Flush writes buffered events to the underlying writer and returns the first write error.
func (t *Trace) Flush() error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err != nil {
		return t.err
	}
	t.err = t.w.Flush()
	return t.err
}

// Logger returns a logger whose records become events of component: the message is the event
// name and the attributes are its fields. Records below level Info are dropped; other levels
// than Info add a "level" field.
func (t *Trace) Logger(component string) *slog.Logger {
	return slog.New(&handler{trace: t, component: component})
}

// handler is the slog.Handler behind Logger.
type handler struct {
	trace     *Trace
	component string
	prefix    string      // group prefix for keys, "a.b."
	attrs     []slog.Attr // from WithAttrs, keys already prefixed
}

func (h *handler) Enabled(_ context.Context, l slog.Level) bool {
	return h.trace != nil && l >= slog.LevelInfo
}

func (h *handler) Handle(_ context.Context, r slog.Record) error {
	t := h.trace
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.begin(h.component, r.Message)
	if r.Level != slog.LevelInfo {
		t.line = appendAttr(t.line, "", slog.String("level", r.Level.String()))
	}
	for _, a := range h.attrs {
		t.line = appendAttr(t.line, "", a)
	}
	r.Attrs(func(a slog.Attr) bool {
		t.line = appendAttr(t.line, h.prefix, a)
		return true
	})
	t.end()
	return nil
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append([]slog.Attr(nil), h.attrs...)
	for _, a := range attrs {
		a.Key = h.prefix + a.Key
		n.attrs = append(n.attrs, a)
	}
	return &n
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	n := *h
	n.prefix = h.prefix + name + "."
	return &n
}

// appendAttr appends `,"key":value`. Groups are flattened into dotted keys, which keeps every
// line a flat object that tools like jq can filter easily.
func appendAttr(b []byte, prefix string, a slog.Attr) []byte {
	v := a.Value.Resolve()
	if a.Key == "" && v.Kind() != slog.KindGroup {
		return b
	}
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, ga := range v.Group() {
			b = appendAttr(b, p, ga)
		}
		return b
	}
	b = append(b, ',')
	b = appendString(b, prefix+a.Key)
	b = append(b, ':')
	return appendValue(b, v)
}

func appendValue(b []byte, v slog.Value) []byte {
	switch v.Kind() {
	case slog.KindString:
		return appendString(b, v.String())
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindFloat64:
		return strconv.AppendFloat(b, v.Float64(), 'g', -1, 64)
	case slog.KindBool:
		return strconv.AppendBool(b, v.Bool())
	case slog.KindDuration:
		return appendString(b, v.Duration().String())
	case slog.KindTime:
		return appendString(b, v.Time().UTC().Format(time.RFC3339Nano))
	default:
		switch x := v.Any().(type) {
		case nil:
			return append(b, "null"...)
		case error:
			return appendString(b, x.Error())
		case fmt.Stringer:
			return appendString(b, x.String())
		default:
			return appendString(b, fmt.Sprint(x))
		}
	}
}

// appendSeconds writes d as seconds with exactly nine decimals.
func appendSeconds(b []byte, d time.Duration) []byte {
	if d < 0 {
		b = append(b, '-')
		d = -d
	}
	b = strconv.AppendInt(b, int64(d/time.Second), 10)
	b = append(b, '.')
	frac := int64(d % time.Second)
	for div := int64(100_000_000); div > 0; div /= 10 {
		b = append(b, byte('0'+frac/div%10))
	}
	return b
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
