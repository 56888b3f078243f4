package liveness

import (
	"bytes"
	"errors"
	"net"
	"testing"
	"time"
)

// FuzzHeartbeat feeds arbitrary frames to ParseFrame: it must never panic, must fail only with
// ErrMalformed or ErrBadMAC, and whatever it accepts must marshal back to the same bytes. When
// resign is set, the frame's HMAC is recomputed over the body its length field claims before
// parsing, so the fuzzer also explores what lies behind authentication; such a frame must never
// fail with ErrBadMAC.
func FuzzHeartbeat(f *testing.F) {
	src := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	for _, h := range []Heartbeat{
		{Type: TypeHello, NodeName: "node-a", Incarnation: 1, Sequence: 1, Interval: 100 * time.Millisecond},
		{Type: TypeLeave, NodeName: "worker-17.example.com", Incarnation: 1 << 60, Sequence: 1 << 40, Interval: time.Second},
	} {
		frame, err := h.MarshalFrame(src, testKey)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(frame, false)
		f.Add(append(bytes.Clone(frame), make([]byte, 20)...), true)
		f.Add(frame[:len(frame)-1], true)
	}
	f.Fuzz(func(t *testing.T, frame []byte, resign bool) {
		resigned := false
		if resign && len(frame) > ethernetHeaderLen+heartbeatFixedLen {
			body := frame[ethernetHeaderLen:]
			end := heartbeatFixedLen + int(body[2])
			if end+macLen <= len(body) {
				copy(body[end:], hmacOf(testKey, body[:end]))
				resigned = true
			}
		}
		h, gotSrc, err := ParseFrame(frame, testKey)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadMAC) {
				t.Fatalf("ParseFrame error %v is neither ErrMalformed nor ErrBadMAC", err)
			}
			if resigned && errors.Is(err, ErrBadMAC) {
				t.Fatalf("re-signed frame %x failed authentication", frame)
			}
			return
		}
		again, err := h.MarshalFrame(gotSrc, testKey)
		if err != nil {
			t.Fatalf("MarshalFrame of a parsed heartbeat %+v: %v", h, err)
		}
		back, backSrc, err := ParseFrame(again, testKey)
		if err != nil || back != h || !bytes.Equal(backSrc, gotSrc) {
			t.Fatalf("re-parse of %x = %+v, %v, %v; want %+v from %v", again, back, backSrc, err, h, gotSrc)
		}
		// A canonical frame (broadcast, reserved byte 0) must come back byte for byte.
		if bytes.Equal(frame[:6], broadcast) && frame[14+3] == 0 && !bytes.Equal(again, frame[:len(again)]) {
			t.Fatalf("re-marshaled\n%x\nwant\n%x", again, frame[:len(again)])
		}
	})
}
