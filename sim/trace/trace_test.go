package trace

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"testing"
	"time"
)

func TestFormat(t *testing.T) {
	var buf bytes.Buffer
	now := 1500*time.Millisecond + 42*time.Nanosecond
	tr := New(&buf, func() time.Duration { return now })
	tr.Emit("switch/lan", "flood",
		slog.String("in", "a/eth0"), slog.Int("len", 60), slog.Bool("ok", true),
		slog.Duration("rtt", 3*time.Millisecond), slog.Any("ip", netip.MustParseAddr("10.0.0.1")),
		slog.Any("err", errors.New(`bad "quote"`)), slog.Group("g", slog.Uint64("n", 7)),
		slog.String("ctl", "a\tb\x01"))
	log := tr.Logger("speaker/a").With("node", "a").WithGroup("vip")
	log.Info("announce", "ip", "10.0.0.200")
	log.Warn("lost")
	log.Debug("dropped: below info")
	if err := tr.Flush(); err != nil {
		t.Fatal(err)
	}
	want := `{"t":1.500000042,"c":"switch/lan","e":"flood","in":"a/eth0","len":60,"ok":true,"rtt":"3ms","ip":"10.0.0.1","err":"bad \"quote\"","g.n":7,"ctl":"a\tb\u0001"}
{"t":1.500000042,"c":"speaker/a","e":"announce","node":"a","vip.ip":"10.0.0.200"}
{"t":1.500000042,"c":"speaker/a","e":"lost","level":"WARN","node":"a"}
`
	if got := buf.String(); got != want {
		t.Errorf("trace =\n%s\nwant\n%s", got, want)
	}
	for i, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		if !json.Valid(line) {
			t.Errorf("line %d is not valid JSON: %s", i, line)
		}
	}
	if tr.Events() != 3 {
		t.Errorf("Events() = %d, want 3", tr.Events())
	}
}

func TestNilTrace(t *testing.T) {
	var tr *Trace
	tr.Emit("x", "y")
	tr.Logger("x").Info("y")
	if tr.Enabled() || tr.Events() != 0 || tr.Flush() != nil {
		t.Error("a nil trace must record nothing and report no error")
	}
}

func TestSeconds(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{{0, "0.000000000"}, {time.Nanosecond, "0.000000001"}, {61 * time.Second, "61.000000000"}, {-time.Millisecond, "-0.001000000"}} {
		if got := string(appendSeconds(nil, tt.d)); got != tt.want {
			t.Errorf("appendSeconds(%v) = %s, want %s", tt.d, got, tt.want)
		}
	}
}
