package ec2sim

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const ec2Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"

// xw writes the XML documents EC2 answers with. A hand-rolled writer keeps
// each action's response next to its code instead of in hundreds of
// struct types.
type xw struct{ b strings.Builder }

func (x *xw) open(name string)  { x.b.WriteString("<" + name + ">") }
func (x *xw) close(name string) { x.b.WriteString("</" + name + ">") }

func (x *xw) leaf(name, v string) {
	x.b.WriteString("<" + name + ">")
	_ = xml.EscapeText(&x.b, []byte(v))
	x.b.WriteString("</" + name + ">")
}

// opt writes a leaf only when v is not empty.
func (x *xw) opt(name, v string) {
	if v != "" {
		x.leaf(name, v)
	}
}

func (x *xw) boolean(name string, v bool) { x.leaf(name, strconv.FormatBool(v)) }
func (x *xw) num(name string, v int)      { x.leaf(name, strconv.Itoa(v)) }
func (x *xw) time(name string, t time.Time) {
	if !t.IsZero() {
		x.leaf(name, t.UTC().Format("2006-01-02T15:04:05.000Z"))
	}
}

func (x *xw) tags(tags []Tag) {
	x.open("tagSet")
	for _, t := range tags {
		x.open("item")
		x.leaf("key", t.Key)
		x.leaf("value", t.Value)
		x.close("item")
	}
	x.close("tagSet")
}

// list writes <name><item>…</item>…</name> for each element.
func list[T any](x *xw, name string, items []T, f func(T)) {
	x.open(name)
	for _, it := range items {
		x.open("item")
		f(it)
		x.close("item")
	}
	x.close(name)
}

// APIError is an EC2 error: a code from AWS's list, a message and the HTTP
// status AWS answers it with.
type APIError struct {
	Code    string
	Message string
	Status  int
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }

// statuses are the HTTP statuses of the error codes that are not 400.
var statuses = map[string]int{
	"UnauthorizedOperation":        http.StatusForbidden,
	"AuthFailure":                  http.StatusUnauthorized,
	"RequestLimitExceeded":         http.StatusServiceUnavailable,
	"Unavailable":                  http.StatusServiceUnavailable,
	"ServiceUnavailable":           http.StatusServiceUnavailable,
	"InternalError":                http.StatusInternalServerError,
	"InsufficientInstanceCapacity": http.StatusInternalServerError,
}

func apiErr(code, format string, args ...any) *APIError {
	st, ok := statuses[code]
	if !ok {
		st = http.StatusBadRequest
	}
	return &APIError{Code: code, Message: fmt.Sprintf(format, args...), Status: st}
}

func writeEC2Error(w http.ResponseWriter, e *APIError, reqID string) {
	var x xw
	x.b.WriteString(xml.Header)
	x.open("Response")
	x.open("Errors")
	x.open("Error")
	x.leaf("Code", e.Code)
	x.leaf("Message", e.Message)
	x.close("Error")
	x.close("Errors")
	x.leaf("RequestID", reqID)
	x.close("Response")
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(e.Status)
	_, _ = w.Write([]byte(x.b.String()))
}

func asAPIError(err error, target **APIError) bool { return errors.As(err, target) }

// strs writes a list of strings: <name><item>a</item>...</name>.
func (x *xw) strs(name string, items []string) {
	list(x, name, items, func(s string) { _ = xml.EscapeText(&x.b, []byte(s)) })
}
