package protocol

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// JSON is the codec for SubprotocolJSON: one JSON object per text frame.
var JSON Codec = jsonCodec{}

type jsonCodec struct{}

func (jsonCodec) Subprotocol() string { return SubprotocolJSON }
func (jsonCodec) Binary() bool        { return false }

// Wire shapes of the JSON encoding. They are private so that the model in
// protocol.go stays free of encoding concerns.

type jsonCommand struct {
	ID             *uint64         `json:"id,omitempty"`
	Op             Op              `json:"op"`
	Room           string          `json:"room,omitempty"`
	Event          string          `json:"event,omitempty"`
	Data           json.RawMessage `json:"data,omitempty"`
	Encoding       string          `json:"encoding,omitempty"` // EncodingBase64: data is a base64 string of binary bytes
	Transient      bool            `json:"transient,omitempty"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	Since          *jsonPosition   `json:"since,omitempty"`
	SessionID      string          `json:"session_id,omitempty"`
	ResumeToken    string          `json:"resume_token,omitempty"`
	Cursor         string          `json:"cursor,omitempty"`
	Limit          int             `json:"limit,omitempty"`
	Token          string          `json:"token,omitempty"`
	// history
	Epoch      string `json:"epoch,omitempty"`
	FromOffset uint64 `json:"from_offset,omitempty"`
	ToOffset   uint64 `json:"to_offset,omitempty"`
	Start      int64  `json:"start,omitempty"`
	End        int64  `json:"end,omitempty"`
	Direction  string `json:"direction,omitempty"`
	// metrics.subscribe
	IntervalMS int `json:"interval_ms,omitempty"`
}

// jsonHistoryMessage is one message of a history reply.
type jsonHistoryMessage struct {
	Offset    uint64          `json:"offset"`
	Epoch     string          `json:"epoch"`
	Event     string          `json:"event,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
	Encoding  string          `json:"encoding,omitempty"`
	From      string          `json:"from,omitempty"`
	Timestamp int64           `json:"ts"`
}

// EncodingBase64 marks, in the JSON encoding, a data field that is a
// base64 string (RFC 4648 standard alphabet, padded) of binary payload
// bytes instead of a JSON value. Binary payloads reach JSON connections
// this way, and JSON clients can publish them.
const EncodingBase64 = "base64"

// History directions on the wire.
const (
	DirectionForward  = "forward"
	DirectionBackward = "backward"
)

type jsonMember struct {
	ClientID     string          `json:"client_id"`
	ConnectionID string          `json:"connection_id"`
	Data         json.RawMessage `json:"data,omitempty"`
	Since        int64           `json:"since"`
}

type jsonCount struct {
	Clients     int `json:"clients"`
	Connections int `json:"connections"`
}

type jsonRoomMetrics struct {
	Members     int     `json:"members"`
	Clients     int     `json:"clients"`
	Connections int     `json:"connections"`
	MessageRate float64 `json:"message_rate"`
}

type jsonError struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

type jsonPosition struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

type jsonLimits struct {
	MaxMessageBytes  int     `json:"max_message_bytes"`
	MaxRoomNameBytes int     `json:"max_room_name_bytes"`
	MaxRooms         int     `json:"max_rooms"`
	PublishRate      float64 `json:"publish_rate"`
	PublishBurst     int     `json:"publish_burst"`
}

type jsonServerFrame struct {
	Type string `json:"type"`

	// connected
	ConnectionID string      `json:"connection_id,omitempty"`
	SessionID    string      `json:"session_id,omitempty"`
	ResumeToken  string      `json:"resume_token,omitempty"`
	ClientID     string      `json:"client_id,omitempty"`
	Node         string      `json:"node,omitempty"`
	HeartbeatMS  int         `json:"heartbeat_ms,omitempty"`
	Limits       *jsonLimits `json:"limits,omitempty"`

	// reply (SessionID and ResumeToken are shared with connected)
	ID        uint64               `json:"id,omitempty"`
	Error     *jsonError           `json:"error,omitempty"`
	Position  *jsonPosition        `json:"position,omitempty"`
	Recovered bool                 `json:"recovered,omitempty"`
	Rooms     []string             `json:"rooms,omitempty"`
	Members   []jsonMember         `json:"members,omitempty"`
	Cursor    string               `json:"cursor,omitempty"`
	Count     *jsonCount           `json:"count,omitempty"`
	Messages  []jsonHistoryMessage `json:"messages,omitempty"`

	// presence (Room, Offset, Epoch and Timestamp are shared with message)
	Action PresenceAction `json:"action,omitempty"`
	Member *jsonMember    `json:"member,omitempty"`

	// metrics (Room and Timestamp are shared with message)
	Metrics *jsonRoomMetrics `json:"metrics,omitempty"`

	// message (Room is shared with reply)
	Room      string          `json:"room,omitempty"`
	Offset    uint64          `json:"offset,omitempty"`
	Epoch     string          `json:"epoch,omitempty"`
	Event     string          `json:"event,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
	Encoding  string          `json:"encoding,omitempty"`
	From      string          `json:"from,omitempty"`
	Timestamp int64           `json:"ts,omitempty"`
	Transient bool            `json:"transient,omitempty"`
}

const (
	typeConnected = "connected"
	typeReply     = "reply"
	typeMessage   = "message"
	typePresence  = "presence"
	typeMetrics   = "metrics"
	typeError     = "error"
)

func (jsonCodec) DecodeCommand(frame []byte) (Command, error) {
	if !isObject(frame) {
		return Command{}, NewError(CodeBadRequest, "a command must be a JSON object")
	}
	var w jsonCommand
	if err := json.Unmarshal(frame, &w); err != nil {
		perr := Errorf(CodeBadRequest, "frame is not a valid command: %s", describeJSONError(err))
		// A type error in another field still lets the id be read, so the
		// client gets its one reply instead of a timeout.
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && w.ID != nil && te.Field != "id" {
			perr.ID = *w.ID
		}
		return Command{}, perr
	}
	c, err := w.command()
	if err != nil {
		return Command{}, err
	}
	if len(w.Data) > 0 {
		if c.Data, c.Binary, err = dataFromJSON(w.Data, w.Encoding); err != nil {
			return Command{}, &Error{Code: CodeBadRequest, Message: err.Error(), ID: c.ID}
		}
	} else if w.Encoding != "" && w.Encoding != EncodingBase64 {
		return Command{}, &Error{Code: CodeBadRequest, Message: errUnknownEncoding.Error(), ID: c.ID}
	}
	return c, nil
}

// command checks a decoded command's id, op and bounds and builds the
// Command without its data, which each encoding carries in its own way.
func (w *jsonCommand) command() (Command, error) {
	if w.ID == nil || *w.ID == 0 {
		return Command{}, NewError(CodeMissingID, "command has no request id (\"id\": a positive integer)")
	}
	id := *w.ID
	switch {
	case w.Op == "":
		return Command{}, &Error{Code: CodeUnknownOp, Message: "command has no op", ID: id}
	case !w.Op.Known():
		return Command{}, &Error{Code: CodeUnknownOp, Message: fmt.Sprintf("unknown op %q", truncate(string(w.Op), 64)), ID: id}
	case w.Limit < 0:
		return Command{}, &Error{Code: CodeBadRequest, Message: "limit must not be negative", ID: id}
	case w.Op == OpHistory && w.Direction != "" && w.Direction != DirectionForward && w.Direction != DirectionBackward:
		return Command{}, &Error{Code: CodeBadRequest, Message: `direction must be "forward" or "backward"`, ID: id}
	case w.Start < 0 || w.End < 0:
		return Command{}, &Error{Code: CodeBadRequest, Message: "start and end must be unix milliseconds", ID: id}
	case w.IntervalMS != 0 && (w.IntervalMS < MetricsIntervalMinMS || w.IntervalMS > MetricsIntervalMaxMS):
		return Command{}, &Error{Code: CodeBadRequest, Message: fmt.Sprintf("interval_ms must be from %d to %d", MetricsIntervalMinMS, MetricsIntervalMaxMS), ID: id}
	}
	c := Command{
		ID:             id,
		Op:             w.Op,
		Room:           w.Room,
		Event:          w.Event,
		Transient:      w.Transient,
		IdempotencyKey: w.IdempotencyKey,
		SessionID:      w.SessionID,
		ResumeToken:    w.ResumeToken,
		Cursor:         w.Cursor,
		Limit:          w.Limit,
		Token:          w.Token,
		IntervalMS:     w.IntervalMS,
	}
	if w.Since != nil {
		c.Since = &Position{Offset: w.Since.Offset, Epoch: w.Since.Epoch}
	}
	if w.Op == OpHistory {
		c.History = &HistoryQuery{Epoch: w.Epoch, FromOffset: w.FromOffset, ToOffset: w.ToOffset,
			Start: w.Start, End: w.End, Backward: w.Direction == DirectionBackward}
	}
	return c, nil
}

var errUnknownEncoding = errors.New(`encoding must be "base64" or absent`)

// dataFromJSON reads a data field of the JSON encoding: a JSON value, or
// with encoding "base64" a base64 string of binary bytes. binary is false
// for an empty string (no data).
func dataFromJSON(raw json.RawMessage, encoding string) (data []byte, binary bool, err error) {
	switch encoding {
	case "":
		if !utf8.Valid(raw) {
			return nil, false, errors.New("data is not valid UTF-8")
		}
		return []byte(raw), false, nil
	case EncodingBase64:
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, false, errors.New(`data with "encoding":"base64" must be a JSON string`)
		}
		b, err := base64.StdEncoding.Strict().DecodeString(s)
		if err != nil {
			return nil, false, errors.New(`data with "encoding":"base64" is not padded standard base64`)
		}
		if len(b) == 0 {
			return nil, false, nil
		}
		return b, true, nil
	}
	return nil, false, errUnknownEncoding
}

// base64JSON is binary data as a JSON string of its base64 (whose
// alphabet needs no escaping).
func base64JSON(b []byte) json.RawMessage {
	out := make([]byte, 0, base64.StdEncoding.EncodedLen(len(b))+2)
	out = append(out, '"')
	out = base64.StdEncoding.AppendEncode(out, b)
	return append(out, '"')
}

func (jsonCodec) AppendCommand(dst []byte, c *Command) ([]byte, error) {
	id := c.ID
	w := jsonCommand{
		ID:             &id,
		Op:             c.Op,
		Room:           c.Room,
		Event:          c.Event,
		Transient:      c.Transient,
		IdempotencyKey: c.IdempotencyKey,
		SessionID:      c.SessionID,
		ResumeToken:    c.ResumeToken,
		Cursor:         c.Cursor,
		Limit:          c.Limit,
		Token:          c.Token,
		IntervalMS:     c.IntervalMS,
	}
	if c.Since != nil {
		w.Since = &jsonPosition{Offset: c.Since.Offset, Epoch: c.Since.Epoch}
	}
	if h := c.History; h != nil {
		w.Epoch, w.FromOffset, w.ToOffset, w.Start, w.End = h.Epoch, h.FromOffset, h.ToOffset, h.Start, h.End
		if h.Backward {
			w.Direction = DirectionBackward
		}
	}
	switch {
	case len(c.Data) == 0:
	case c.Binary:
		w.Data, w.Encoding = base64JSON(c.Data), EncodingBase64
	case !json.Valid(c.Data) || !utf8.Valid(c.Data):
		return dst, errors.New("protocol: command data is not valid UTF-8 JSON")
	default:
		w.Data = c.Data
	}
	return appendJSON(dst, &w)
}

func (jsonCodec) AppendServerFrame(dst []byte, f *ServerFrame) ([]byte, error) {
	var w jsonServerFrame
	switch {
	case f.Connected != nil:
		c := f.Connected
		w = jsonServerFrame{
			Type:         typeConnected,
			ConnectionID: c.ConnectionID,
			SessionID:    c.SessionID,
			ResumeToken:  c.ResumeToken,
			ClientID:     c.ClientID,
			Node:         c.Node,
			HeartbeatMS:  c.HeartbeatMS,
			Limits: &jsonLimits{
				MaxMessageBytes:  c.Limits.MaxMessageBytes,
				MaxRoomNameBytes: c.Limits.MaxRoomNameBytes,
				MaxRooms:         c.Limits.MaxRooms,
				PublishRate:      c.Limits.PublishRate,
				PublishBurst:     c.Limits.PublishBurst,
			},
		}
	case f.Reply != nil:
		r := f.Reply
		w = jsonServerFrame{Type: typeReply, ID: r.ID, Room: r.Room, Recovered: r.Recovered,
			SessionID: r.SessionID, ResumeToken: r.ResumeToken, Rooms: r.Rooms}
		if r.Error != nil {
			w.Error = &jsonError{Code: r.Error.Code, Message: r.Error.Message}
		}
		if r.Position != nil {
			w.Position = &jsonPosition{Offset: r.Position.Offset, Epoch: r.Position.Epoch}
		}
		if r.Members != nil {
			w.Members = make([]jsonMember, len(r.Members))
			for i := range r.Members {
				jm, err := memberToJSON(&r.Members[i])
				if err != nil {
					return dst, err
				}
				w.Members[i] = *jm
			}
		}
		w.Cursor = r.Cursor
		if r.Messages != nil {
			w.Messages = make([]jsonHistoryMessage, len(r.Messages))
			for i := range r.Messages {
				m := &r.Messages[i]
				w.Messages[i] = jsonHistoryMessage{Offset: m.Offset, Epoch: m.Epoch, Event: m.Event, From: m.From, Timestamp: m.Timestamp}
				switch {
				case len(m.Data) == 0:
				case m.Binary:
					w.Messages[i].Data, w.Messages[i].Encoding = base64JSON(m.Data), EncodingBase64
				case !utf8.Valid(m.Data) || !json.Valid(m.Data):
					return dst, errors.New("protocol: history message data is not valid UTF-8 JSON")
				default:
					w.Messages[i].Data = m.Data
				}
			}
		}
		if r.Count != nil {
			w.Count = &jsonCount{Clients: r.Count.Clients, Connections: r.Count.Connections}
		}
	case f.Presence != nil:
		p := f.Presence
		jm, err := memberToJSON(&p.Member)
		if err != nil {
			return dst, err
		}
		w = jsonServerFrame{Type: typePresence, Room: p.Room, Action: p.Action, Member: jm,
			Offset: p.Offset, Epoch: p.Epoch, Timestamp: p.Timestamp}
	case f.Metrics != nil:
		m := f.Metrics
		w = jsonServerFrame{Type: typeMetrics, Room: m.Room, Timestamp: m.Timestamp,
			Metrics: &jsonRoomMetrics{Members: m.Members, Clients: m.Clients, Connections: m.Connections, MessageRate: m.MessageRate}}
	case f.Message != nil:
		m := f.Message
		w = jsonServerFrame{
			Type:      typeMessage,
			Room:      m.Room,
			Offset:    m.Offset,
			Epoch:     m.Epoch,
			Event:     m.Event,
			From:      m.From,
			Timestamp: m.Timestamp,
			Transient: m.Transient,
		}
		switch {
		case len(m.Data) == 0:
		case m.Binary:
			w.Data, w.Encoding = base64JSON(m.Data), EncodingBase64
		case !utf8.Valid(m.Data):
			// Data that reached us by another path (REST, the broker) must
			// not turn into a text frame that browsers reject with 1007.
			return dst, errors.New("protocol: message data is not valid UTF-8")
		default:
			w.Data = m.Data
		}
	case f.Error != nil:
		w = jsonServerFrame{Type: typeError, ID: f.Error.ID, Error: &jsonError{Code: f.Error.Code, Message: f.Error.Message}}
	default:
		return dst, errors.New("protocol: empty server frame")
	}
	return appendJSON(dst, &w)
}

func (jsonCodec) DecodeServerFrame(frame []byte) (ServerFrame, error) {
	// A text frame is UTF-8 (RFC 6455); one that is not is corrupt, and its
	// raw data could not be passed on as JSON text either.
	if !utf8.Valid(frame) {
		return ServerFrame{}, errors.New("protocol: server frame is not valid UTF-8")
	}
	if m, ok := fastJSONMessage(frame); ok {
		return ServerFrame{Message: m}, nil
	}
	var w jsonServerFrame
	if err := json.Unmarshal(frame, &w); err != nil {
		return ServerFrame{}, fmt.Errorf("protocol: decode server frame: %w", err)
	}
	var jerr *Error
	if w.Error != nil {
		jerr = &Error{Code: w.Error.Code, Message: w.Error.Message, ID: w.ID}
	}
	switch w.Type {
	case typeConnected:
		c := &Connected{
			ConnectionID: w.ConnectionID,
			SessionID:    w.SessionID,
			ResumeToken:  w.ResumeToken,
			ClientID:     w.ClientID,
			Node:         w.Node,
			HeartbeatMS:  w.HeartbeatMS,
		}
		if w.Limits != nil {
			c.Limits = Limits{
				MaxMessageBytes:  w.Limits.MaxMessageBytes,
				MaxRoomNameBytes: w.Limits.MaxRoomNameBytes,
				MaxRooms:         w.Limits.MaxRooms,
				PublishRate:      w.Limits.PublishRate,
				PublishBurst:     w.Limits.PublishBurst,
			}
		}
		return ServerFrame{Connected: c}, nil
	case typeReply:
		r := &Reply{ID: w.ID, Room: w.Room, Error: jerr, Recovered: w.Recovered,
			SessionID: w.SessionID, ResumeToken: w.ResumeToken}
		if len(w.Rooms) > 0 { // "rooms":[] is no rooms, as the encoder writes it
			r.Rooms = w.Rooms
		}
		if w.Position != nil {
			r.Position = &Position{Offset: w.Position.Offset, Epoch: w.Position.Epoch}
		}
		if w.Members != nil {
			r.Members = make([]PresenceMember, len(w.Members))
			for i := range w.Members {
				r.Members[i] = memberFromJSON(&w.Members[i])
			}
		}
		r.Cursor = w.Cursor
		if len(w.Messages) > 0 {
			r.Messages = make([]Message, len(w.Messages))
			for i, m := range w.Messages {
				r.Messages[i] = Message{Room: w.Room, Offset: m.Offset, Epoch: m.Epoch, Event: m.Event, From: m.From, Timestamp: m.Timestamp}
				if m.Encoding != "" {
					data, binary, err := dataFromJSON(m.Data, m.Encoding)
					if err != nil {
						return ServerFrame{}, fmt.Errorf("protocol: decode server frame: history message: %w", err)
					}
					r.Messages[i].Data, r.Messages[i].Binary = data, binary
				} else if len(m.Data) > 0 {
					var b bytes.Buffer
					if json.Compact(&b, m.Data) == nil {
						r.Messages[i].Data = b.Bytes()
					} else {
						r.Messages[i].Data = []byte(m.Data)
					}
				}
			}
		}
		if w.Count != nil {
			r.Count = &PresenceCount{Clients: w.Count.Clients, Connections: w.Count.Connections}
		}
		return ServerFrame{Reply: r}, nil
	case typePresence:
		p := &PresenceEvent{Room: w.Room, Action: w.Action, Offset: w.Offset, Epoch: w.Epoch, Timestamp: w.Timestamp}
		if w.Member != nil {
			p.Member = memberFromJSON(w.Member)
		}
		return ServerFrame{Presence: p}, nil
	case typeMetrics:
		m := &RoomMetrics{Room: w.Room, Timestamp: w.Timestamp}
		if w.Metrics != nil {
			m.Members, m.Clients, m.Connections, m.MessageRate = w.Metrics.Members, w.Metrics.Clients, w.Metrics.Connections, w.Metrics.MessageRate
		}
		return ServerFrame{Metrics: m}, nil
	case typeMessage:
		m := &Message{
			Room:      w.Room,
			Offset:    w.Offset,
			Epoch:     w.Epoch,
			Event:     w.Event,
			From:      w.From,
			Timestamp: w.Timestamp,
			Transient: w.Transient,
		}
		if w.Encoding != "" {
			data, binary, err := dataFromJSON(w.Data, w.Encoding)
			if err != nil {
				return ServerFrame{}, fmt.Errorf("protocol: decode server frame: message: %w", err)
			}
			m.Data, m.Binary = data, binary
		} else if len(w.Data) > 0 {
			m.Data = []byte(w.Data)
		}
		return ServerFrame{Message: m}, nil
	case typeError:
		if jerr == nil {
			jerr = NewError(CodeInternal, "error frame without error")
		}
		return ServerFrame{Error: jerr}, nil
	}
	return ServerFrame{}, fmt.Errorf("protocol: unknown server frame type %q", truncate(w.Type, 64))
}

func memberToJSON(m *PresenceMember) (*jsonMember, error) {
	jm := &jsonMember{ClientID: m.ClientID, ConnectionID: m.ConnectionID, Since: m.Since}
	if len(m.Data) > 0 {
		if !utf8.Valid(m.Data) || !json.Valid(m.Data) {
			return nil, errors.New("protocol: presence data is not valid UTF-8 JSON")
		}
		jm.Data = m.Data
	}
	return jm, nil
}

func memberFromJSON(jm *jsonMember) PresenceMember {
	m := PresenceMember{ClientID: jm.ClientID, ConnectionID: jm.ConnectionID, Since: jm.Since}
	if len(jm.Data) > 0 {
		m.Data = []byte(jm.Data)
	}
	return m
}

func appendJSON(dst []byte, v any) ([]byte, error) {
	buf := bytes.NewBuffer(dst)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return dst, fmt.Errorf("protocol: encode: %w", err)
	}
	out := buf.Bytes()
	// Encoder.Encode appends a newline; frames do not need it.
	return out[:len(out)-1], nil
}

// describeJSONError keeps decode errors short and free of echoed input.
func describeJSONError(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return "a command must be a JSON object"
		}
		return fmt.Sprintf("field %q must not be a JSON %s", truncate(te.Field, 64), te.Value)
	}
	return "invalid JSON"
}

// isObject reports whether the JSON text starts with an object.
func isObject(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
