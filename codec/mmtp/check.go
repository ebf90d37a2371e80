package mmtp

import "strconv"

// CheckClientFrame applies the direction rule of the gateway side: a client may send
// HELLO, REQUEST, PUSH_ACK, PING and PONG. A RESPONSE, PUSH or GOAWAY from a client is a
// protocol error (offset 3, the type byte). Request-level rules (a missing
// `operation-type`) are not checked here: they are answered 400, not GOAWAY.
func CheckClientFrame(f *Frame) error {
	switch f.Type {
	case TypeHello, TypeRequest, TypePushAck, TypePing, TypePong:
		return nil
	}
	return protoErr(3, FieldType, f.Type.String()+" is sent only by the gateway")
}

// CheckServerFrame applies the client side's rules: the gateway may send RESPONSE, PUSH,
// PING, PONG and GOAWAY; a RESPONSE must carry a 3-digit `status` and a GOAWAY a decimal
// `last-stream-id`. A PUSH without `topic` is accepted (the topic is then empty).
func CheckServerFrame(f *Frame) error {
	switch f.Type {
	case TypeResponse:
		_, err := ResponseStatus(f)
		return err
	case TypeGoAway:
		_, err := LastStreamID(f)
		return err
	case TypePush, TypePing, TypePong:
		return nil
	}
	return protoErr(3, FieldType, f.Type.String()+" is sent only by a client")
}

// ResponseStatus returns the `status` of a RESPONSE: exactly three decimal digits.
func ResponseStatus(f *Frame) (int, error) {
	off, v, ok := f.lookup("status")
	if !ok {
		return 0, protoErr(HeaderSize, FieldHeader, "RESPONSE without the required status header")
	}
	if len(v) != 3 || !digits(v) || v[0] == '0' {
		return 0, protoErr(off, FieldHeader, "status "+strconv.Quote(string(v))+" is not a 3-digit status code")
	}
	return int(v[0]-'0')*100 + int(v[1]-'0')*10 + int(v[2]-'0'), nil
}

// LastStreamID returns the `last-stream-id` of a GOAWAY: a decimal uint32.
func LastStreamID(f *Frame) (uint32, error) {
	off, v, ok := f.lookup("last-stream-id")
	if !ok {
		return 0, protoErr(HeaderSize, FieldHeader, "GOAWAY without the required last-stream-id header")
	}
	if len(v) == 0 || len(v) > 10 || !digits(v) {
		return 0, protoErr(off, FieldHeader, "last-stream-id "+strconv.Quote(string(v))+" is not a decimal stream id")
	}
	n, err := strconv.ParseUint(string(v), 10, 32)
	if err != nil {
		return 0, protoErr(off, FieldHeader, "last-stream-id "+strconv.Quote(string(v))+" is out of range")
	}
	return uint32(n), nil
}

func digits(v []byte) bool {
	for _, c := range v {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
