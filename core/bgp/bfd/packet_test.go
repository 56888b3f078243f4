package bfd

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func mustHex(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestControlPacketRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		p    ControlPacket
		wire string
	}{
		{
			name: "down, first packet",
			p: ControlPacket{State: StateDown, DetectMult: 3, MyDiscriminator: 1,
				DesiredMinTxInterval: time.Second, RequiredMinRxInterval: 300 * time.Millisecond},
			// ver 1 diag 0 | sta 1 | mult 3 | len 24 | my 1 | your 0 | tx 1000000 | rx 300000 | echo 0
			wire: "20400318" + "00000001" + "00000000" + "000f4240" + "000493e0" + "00000000",
		},
		{
			name: "up with poll",
			p: ControlPacket{State: StateUp, Poll: true, DetectMult: 5, MyDiscriminator: 0x01020304, YourDiscriminator: 0xa0b0c0d0,
				DesiredMinTxInterval: 50 * time.Millisecond, RequiredMinRxInterval: 50 * time.Millisecond, RequiredMinEchoRxInterval: time.Microsecond},
			wire: "20e00518" + "01020304" + "a0b0c0d0" + "0000c350" + "0000c350" + "00000001",
		},
		{
			name: "down after detection timeout, final, C and D bits",
			p: ControlPacket{Diag: DiagControlDetectionTimeExpired, State: StateDown, Final: true, ControlPlaneIndependent: true, Demand: true,
				DetectMult: 1, MyDiscriminator: 7, YourDiscriminator: 9},
			wire: "215a0118" + "00000007" + "00000009" + "00000000" + "00000000" + "00000000",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.p.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if want := mustHex(t, tt.wire); !bytes.Equal(got, want) {
				t.Errorf("marshal:\n got %x\nwant %x", got, want)
			}
			var back ControlPacket
			if err := back.UnmarshalBinary(mustHex(t, tt.wire)); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.p, back); diff != "" {
				t.Errorf("unmarshal (-want +got):\n%s", diff)
			}
		})
	}
}

func TestControlPacketRejects(t *testing.T) {
	valid := "20400318" + "00000001" + "00000000" + "000f4240" + "000493e0" + "00000000"
	tests := []struct {
		name string
		wire string
		want error
	}{
		{"short", valid[:46], ErrShort},
		{"version 0", "00" + valid[2:], ErrVersion},
		{"auth bit", "20440318" + valid[8:], ErrAuthUnsupported},
		{"length field below 24", "20400317" + valid[8:], ErrInvalid},
		{"length field beyond packet", "20400319" + valid[8:], ErrShort},
		{"multipoint", "20410318" + valid[8:], ErrInvalid},
		{"detect mult 0", "20400018" + valid[8:], ErrInvalid},
		{"my discriminator 0", "20400318" + "00000000" + valid[16:], ErrInvalid},
		{"your discriminator 0 while up", "20c00318" + valid[8:], ErrInvalid},
		{"poll and final", "20700318" + valid[8:], ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p ControlPacket
			if err := p.UnmarshalBinary(mustHex(t, tt.wire)); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
	// Marshal refuses what Unmarshal would refuse.
	bad := []ControlPacket{
		{State: StateDown, MyDiscriminator: 1},
		{State: StateUp, DetectMult: 3, MyDiscriminator: 1},
		{State: StateDown, DetectMult: 3, MyDiscriminator: 1, DesiredMinTxInterval: time.Nanosecond},
		{State: StateDown, DetectMult: 3, MyDiscriminator: 1, RequiredMinRxInterval: 2 * time.Hour},
		{State: StateDown, Diag: 32, DetectMult: 3, MyDiscriminator: 1},
	}
	for i, p := range bad {
		if _, err := p.MarshalBinary(); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad[%d]: marshal err %v, want ErrInvalid", i, err)
		}
	}
}

func TestPeekDiscriminators(t *testing.T) {
	my, your, ok := PeekDiscriminators(mustHex(t, "20e00518"+"01020304"+"a0b0c0d0"+"0000c350"+"0000c350"+"00000001"))
	if !ok || my != 0x01020304 || your != 0xa0b0c0d0 {
		t.Errorf("got %x %x %v", my, your, ok)
	}
	if _, _, ok := PeekDiscriminators(make([]byte, 23)); ok {
		t.Error("short packet accepted")
	}
}

// FuzzControlPacket checks that decoding never panics and that whatever decodes encodes back
// to the same 24 octets (with the length field normalized) and decodes to the same packet.
func FuzzControlPacket(f *testing.F) {
	f.Add(mustHex(f, "20400318"+"00000001"+"00000000"+"000f4240"+"000493e0"+"00000000"))
	f.Add(mustHex(f, "20e00518"+"01020304"+"a0b0c0d0"+"0000c350"+"0000c350"+"00000001"))
	f.Add(mustHex(f, "215a0120"+"00000007"+"00000009"+"00000000"+"00000000"+"00000000"+"deadbeefdeadbeef"))
	f.Add(mustHex(f, "20440318"+"00000001"+"00000000"+"000f4240"+"000493e0"+"00000000"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var p ControlPacket
		if err := p.UnmarshalBinary(b); err != nil {
			return
		}
		out, err := p.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded packet %+v does not encode: %v", p, err)
		}
		want := bytes.Clone(b[:ControlPacketLen])
		want[3] = ControlPacketLen
		if !bytes.Equal(out, want) {
			t.Fatalf("re-encoded\n got %x\nwant %x", out, want)
		}
		var again ControlPacket
		if err := again.UnmarshalBinary(out); err != nil || again != p {
			t.Fatalf("second decode: %+v, %v; want %+v", again, err, p)
		}
	})
}
