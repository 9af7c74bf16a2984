package contracts

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"
	fastjson "github.com/segmentio/encoding/json"
)

// Metadata keys and the content type the typed publisher writes.
const (
	// MetadataContentType holds the payload's media type.
	MetadataContentType = "quantumflow_content_type"
	// MetadataSchema holds the payload's contract and version,
	// "NAME/vVERSION" (Schema.String).
	MetadataSchema = "quantumflow_schema"
	// ContentTypeJSON is the only content type of contracts.
	ContentTypeJSON = "application/json"
)

// Contract is a message type of a queue. Implement Schema and Validate
// with value receivers and embed Versioned (which brings PayloadVersion
// and lets the publisher write the version).
type Contract interface {
	// Schema names the contract and the newest version this code knows.
	// It is called on the zero value.
	Schema() Schema
	// Validate reports the first field at fault, as an error from Field.
	Validate() error
	// PayloadVersion is the schema version the value was written at.
	PayloadVersion() int
}

// Upgrader is implemented (with a pointer receiver) by a contract that
// fills its current fields from an older version's: Decode calls Upgrade
// with the payload's version before Validate when it is older than the
// known one.
type Upgrader interface {
	Upgrade(from int) error
}

// Schema names a contract and a version of it.
type Schema struct {
	// Name is a dotted name, e.g. "quantumflow.proposal".
	Name string
	// Version counts from 1.
	Version int
}

// String is "NAME/vVERSION", the value of MetadataSchema.
func (s Schema) String() string { return s.Name + "/v" + strconv.Itoa(s.Version) }

// ParseSchema reads what Schema.String writes.
func ParseSchema(s string) (Schema, error) {
	i := strings.LastIndex(s, "/v")
	if i <= 0 {
		return Schema{}, fmt.Errorf("schema %q: want NAME/vVERSION", s)
	}
	v, err := strconv.Atoi(s[i+2:])
	if err != nil || v < 1 {
		return Schema{}, fmt.Errorf("schema %q: the version must be a whole number from 1", s)
	}
	return Schema{Name: s[:i], Version: v}, nil
}

// Versioned carries a payload's schema version; embed it in every
// contract. Zero means version 1 (payloads written before the field).
type Versioned struct {
	// SchemaVersion is the version of the contract the payload was
	// written at. The publisher sets it to the contract's version when
	// zero.
	SchemaVersion int `json:"schema_version,omitempty"`
}

// PayloadVersion returns SchemaVersion, or 1 when it is zero.
func (v Versioned) PayloadVersion() int {
	if v.SchemaVersion == 0 {
		return 1
	}
	return v.SchemaVersion
}

func (v Versioned) rawVersion() int { return v.SchemaVersion }

// SetSchemaVersion sets SchemaVersion.
func (v *Versioned) SetSchemaVersion(n int) { v.SchemaVersion = n }

// ErrInvalid is matched (errors.Is) by every *Error.
var ErrInvalid = errors.New("invalid payload")

// Error is a payload refused by its contract.
type Error struct {
	// Queue is the queue the payload is for or came from; empty when not
	// known (Validate called directly).
	Queue string
	// Schema is the contract's schema (the version the code knows).
	Schema Schema
	// Field is the JSON name of the field at fault ("a.b" inside an
	// object), a metadata key, or empty for the payload as a whole.
	Field string
	// Reason says what is wrong with it.
	Reason string
	// Err is the underlying error, if any (a JSON error).
	Err error
}

// Field returns the error of a contract's Validate: field (its JSON name)
// is at fault, for the reason formatted.
func Field(field, format string, args ...any) error {
	return &Error{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Error reads "queue Q: NAME/vN: field "F": reason".
func (e *Error) Error() string {
	var b strings.Builder
	if e.Queue != "" {
		b.WriteString("queue " + e.Queue + ": ")
	}
	if e.Schema.Name != "" {
		b.WriteString(e.Schema.String() + ": ")
	}
	if e.Field != "" {
		b.WriteString("field " + strconv.Quote(e.Field) + ": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// in fills the queue and schema of err when it is an *Error, and makes
// one of any other error.
func in(queue string, s Schema, err error) *Error {
	var ce *Error
	if errors.As(err, &ce) {
		c := *ce
		c.Queue, c.Schema = queue, s
		return &c
	}
	return &Error{Queue: queue, Schema: s, Reason: err.Error(), Err: err}
}

// Decode decodes payload as a T for queue and checks it: the schema
// version (payload and metadata, see the package documentation), the JSON
// and T's Validate. md may be nil. Any refusal is an *Error naming queue
// and the field.
func Decode[T Contract](queue string, payload []byte, md message.Metadata) (T, error) {
	var v T
	want := v.Schema()
	if err := checkMetadata(want, md); err != nil {
		return v, in(queue, want, err)
	}
	if err := unmarshal(payload, &v); err != nil {
		return v, in(queue, want, jsonError(err, payload))
	}
	if err := checkVersion(want, v.PayloadVersion()); err != nil {
		return v, in(queue, want, err)
	}
	if v.PayloadVersion() < want.Version {
		if u, ok := any(&v).(Upgrader); ok {
			if err := u.Upgrade(v.PayloadVersion()); err != nil {
				return v, in(queue, want, err)
			}
		}
	}
	if err := v.Validate(); err != nil {
		return v, in(queue, want, err)
	}
	return v, nil
}

// Encode validates v and returns its JSON for queue, with SchemaVersion
// set to the contract's version when it was zero. A version newer than
// the contract's is refused as Decode would.
func Encode[T Contract](queue string, v T) ([]byte, Schema, error) {
	want := v.Schema()
	// A value written by this code is at the known version unless it
	// says otherwise.
	if r, ok := any(v).(interface{ rawVersion() int }); ok && r.rawVersion() == 0 {
		if set, ok := any(&v).(interface{ SetSchemaVersion(int) }); ok {
			set.SetSchemaVersion(want.Version)
		}
	}
	s := Schema{Name: want.Name, Version: v.PayloadVersion()}
	if err := checkVersion(want, s.Version); err != nil {
		return nil, s, in(queue, want, err)
	}
	if err := v.Validate(); err != nil {
		return nil, s, in(queue, want, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, s, in(queue, want, err)
	}
	return b, s, nil
}

// SetMetadata writes MetadataContentType and MetadataSchema.
func SetMetadata(md message.Metadata, s Schema) {
	md.Set(MetadataContentType, ContentTypeJSON)
	md.Set(MetadataSchema, s.String())
}

func checkVersion(want Schema, got int) error {
	switch {
	case got < 1:
		return Field("schema_version", "must be 1 or more, got %d", got)
	case got > want.Version:
		return Field("schema_version", "version %d is newer than the newest this consumer knows (%d): deploy consumers before producers", got, want.Version)
	}
	return nil
}

func checkMetadata(want Schema, md message.Metadata) error {
	if ct := md.Get(MetadataContentType); ct != "" && ct != ContentTypeJSON {
		return Field(MetadataContentType, "content type %q: want %s", ct, ContentTypeJSON)
	}
	raw := md.Get(MetadataSchema)
	if raw == "" {
		return nil
	}
	s, err := ParseSchema(raw)
	if err != nil {
		return Field(MetadataSchema, "%v", err)
	}
	if s.Name != want.Name {
		return Field(MetadataSchema, "the message is a %s, this queue's contract is %s", s, want.Name)
	}
	if s.Version > want.Version {
		return Field(MetadataSchema, "version %d is newer than the newest this consumer knows (%d): deploy consumers before producers", s.Version, want.Version)
	}
	return nil
}

// unmarshal decodes payload into v with segmentio's encoding/json, which
// decodes a contract about four times as fast as the standard library's
// (router.Handle's cost per message, bench typed_consume). A payload it
// refuses is decoded again by the standard library, whose errors say
// which field and which JSON type were wrong: that path is rare and its
// errors are what a producer reads.
func unmarshal[T any](payload []byte, v *T) error {
	if err := fastjson.Unmarshal(payload, v); err == nil {
		return nil
	}
	var zero T
	*v = zero
	return json.Unmarshal(payload, v)
}

// jsonError turns a JSON error into one naming the field.
func jsonError(err error, payload []byte) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case len(strings.TrimSpace(string(payload))) == 0:
		return &Error{Reason: "empty payload: want a JSON object", Err: err}
	case errors.As(err, &syn):
		return &Error{Reason: fmt.Sprintf("malformed JSON at byte %d: %v", syn.Offset, err), Err: err}
	case errors.As(err, &typ) && typ.Field == "":
		return &Error{Reason: fmt.Sprintf("want a JSON object, got %s", typ.Value), Err: err}
	case errors.As(err, &typ):
		return &Error{Field: typ.Field, Reason: fmt.Sprintf("want %s, got %s", jsonKind(typ.Type.Kind().String()), typ.Value), Err: err}
	}
	return &Error{Reason: err.Error(), Err: err}
}

// jsonKind names a Go kind the way JSON does.
func jsonKind(k string) string {
	switch {
	case strings.HasPrefix(k, "int"), strings.HasPrefix(k, "uint"), strings.HasPrefix(k, "float"):
		return "a number"
	case k == "bool":
		return "true or false"
	case k == "string":
		return "a string"
	case k == "slice", k == "array":
		return "an array"
	}
	return "an object"
}
