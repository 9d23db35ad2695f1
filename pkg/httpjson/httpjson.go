// Package httpjson writes the services' HTTP responses: JSON bodies, and
// one error shape everywhere — {"error":{"code":"...","message":"..."}}
// with a stable code from pkg/protocol.
package httpjson

import (
	"encoding/json"
	"net/http"

	"github.com/roomcast/roomcast/pkg/protocol"
)

// Write sends v as a JSON body with status.
func Write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// Error is the body of every error response.
type Error struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody is a code and a human-readable message.
type ErrorBody struct {
	Code    protocol.Code `json:"code"`
	Message string        `json:"message"`
}

// WriteError sends the error body with status.
func WriteError(w http.ResponseWriter, status int, code protocol.Code, msg string) {
	Write(w, status, Error{Error: ErrorBody{Code: code, Message: msg}})
}
