package bgp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

// Message framing (RFC 4271 §4.1): a 16-octet all-ones marker, a 2-octet total length and a
// 1-octet type, then the body. Without the extended message capability (which Switchyard does
// not offer) a message is at most 4096 octets long.
const (
	headerLen     = bgp.BGP_HEADER_LENGTH
	maxMessageLen = bgp.BGP_MAX_MESSAGE_LENGTH
)

// lengthBounds are the smallest and largest legal total lengths per message type (RFC 4271 §4
// and §6.1; RFC 2918 for ROUTE-REFRESH).
var lengthBounds = map[uint8][2]int{
	bgp.BGP_MSG_OPEN:          {29, maxMessageLen},
	bgp.BGP_MSG_UPDATE:        {23, maxMessageLen},
	bgp.BGP_MSG_NOTIFICATION:  {21, maxMessageLen},
	bgp.BGP_MSG_KEEPALIVE:     {19, 19},
	bgp.BGP_MSG_ROUTE_REFRESH: {23, 23},
}

// notification is an error that ends a session with a NOTIFICATION carrying code, subcode and
// data (RFC 4271 §4.5).
type notification struct {
	code, subcode uint8
	data          []byte
	reason        string
}

func (n *notification) Error() string {
	return fmt.Sprintf("bgp notification %d/%d: %s", n.code, n.subcode, n.reason)
}

func (n *notification) message() *bgp.BGPMessage {
	return bgp.NewBGPNotificationMessage(n.code, n.subcode, n.data)
}

// readMessage reads one message from r. Framing faults come back as a *notification naming the
// message header error to send (RFC 4271 §6.1); I/O errors come back as they are.
func readMessage(r io.Reader) (hdr bgp.BGPHeader, body []byte, err error) {
	var h [headerLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return hdr, nil, err
	}
	if err := checkHeader(h[:]); err != nil {
		return hdr, nil, err
	}
	hdr = bgp.BGPHeader{Marker: h[:16], Len: binary.BigEndian.Uint16(h[16:18]), Type: h[18]}
	body = make([]byte, int(hdr.Len)-headerLen)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return hdr, nil, err
	}
	return hdr, body, nil
}

// checkHeader validates a 19-octet header as RFC 4271 §6.1 says.
func checkHeader(h []byte) error {
	for _, b := range h[:16] {
		if b != 0xff {
			return &notification{code: bgp.BGP_ERROR_MESSAGE_HEADER_ERROR,
				subcode: bgp.BGP_ERROR_SUB_CONNECTION_NOT_SYNCHRONIZED, reason: "marker is not all ones"}
		}
	}
	length := int(binary.BigEndian.Uint16(h[16:18]))
	typ := h[18]
	bounds, known := lengthBounds[typ]
	if !known {
		return &notification{code: bgp.BGP_ERROR_MESSAGE_HEADER_ERROR,
			subcode: bgp.BGP_ERROR_SUB_BAD_MESSAGE_TYPE, data: []byte{typ},
			reason: fmt.Sprintf("unknown message type %d", typ)}
	}
	if length < bounds[0] || length > bounds[1] {
		return &notification{code: bgp.BGP_ERROR_MESSAGE_HEADER_ERROR,
			subcode: bgp.BGP_ERROR_SUB_BAD_MESSAGE_LENGTH, data: binary.BigEndian.AppendUint16(nil, uint16(length)),
			reason: fmt.Sprintf("length %d is outside [%d, %d] for message type %d", length, bounds[0], bounds[1], typ)}
	}
	return nil
}

// decodeBody decodes a framed message with gobgp's codec. A decode fault comes back as a
// *notification; recoverable UPDATE faults (RFC 7606 treat-as-withdraw and attribute-discard)
// are not errors here, because Switchyard ignores received routes anyway.
func decodeBody(hdr bgp.BGPHeader, body []byte) (msg *bgp.BGPMessage, fault *notification) {
	defer func() {
		// The codec is third-party code fed by a remote peer. Should it ever panic on some
		// input, that input is a malformed message, not a reason to take the speaker down.
		if r := recover(); r != nil {
			msg, fault = nil, &notification{code: errorCodeForType(hdr.Type), reason: fmt.Sprintf("codec panic: %v", r)}
		}
	}()
	msg, err := bgp.ParseBGPBody(&hdr, body)
	if err == nil {
		return msg, nil
	}
	var me *bgp.MessageError
	if !errors.As(err, &me) {
		return nil, &notification{code: errorCodeForType(hdr.Type), reason: err.Error()}
	}
	if hdr.Type == bgp.BGP_MSG_UPDATE && msg != nil && me.ErrorHandling < bgp.ERROR_HANDLING_AFISAFI_DISABLE {
		return msg, nil
	}
	code, subcode := me.TypeCode, me.SubTypeCode
	if code == 0 {
		code = errorCodeForType(hdr.Type)
	}
	return nil, &notification{code: code, subcode: subcode, data: me.Data, reason: me.Message}
}

// errorCodeForType is the NOTIFICATION error code for an undecodable message of type t whose
// decoder gave no code of its own.
func errorCodeForType(t uint8) uint8 {
	switch t {
	case bgp.BGP_MSG_OPEN:
		return bgp.BGP_ERROR_OPEN_MESSAGE_ERROR
	case bgp.BGP_MSG_UPDATE:
		return bgp.BGP_ERROR_UPDATE_MESSAGE_ERROR
	case bgp.BGP_MSG_ROUTE_REFRESH:
		return bgp.BGP_ERROR_ROUTE_REFRESH_MESSAGE_ERROR
	default:
		return bgp.BGP_ERROR_MESSAGE_HEADER_ERROR
	}
}
