package awsclient

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// bodyPeek is how much of a non-XML error body the message quotes.
const bodyPeek = 200

// NonXMLServerError is a 5xx answer whose body is not an EC2 error
// document: a proxy's or an emulator's HTML page (moto answers 500 with an
// HTML traceback page for what it has not implemented). Without it the SDK
// reports an XML syntax error that says nothing about what the server said.
type NonXMLServerError struct {
	Status int
	Start  string // the start of the body, at most bodyPeek bytes, printable
}

func (e *NonXMLServerError) Error() string {
	return fmt.Sprintf("the server answered HTTP %d %s with a body that is not an EC2 error document: %q",
		e.Status, http.StatusText(e.Status), e.Start)
}

// nonXMLErrors is a deserialize middleware that runs next to the transport:
// on a 5xx whose body does not look like XML it returns NonXMLServerError
// (as a smithy ResponseError, so the retryer still retries 5xx answers);
// every other answer goes on to the operation's deserializer unchanged.
type nonXMLErrors struct{}

func (nonXMLErrors) ID() string { return "amibake.NonXMLServerErrors" }

func (nonXMLErrors) HandleDeserialize(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
	out, md, err := next.HandleDeserialize(ctx, in)
	if err != nil {
		return out, md, err
	}
	resp, ok := out.RawResponse.(*smithyhttp.Response)
	if !ok || resp.StatusCode < 500 || resp.Body == nil {
		return out, md, err
	}
	// An EC2 error document is small; read enough to decide, keep the rest.
	head := make([]byte, 4096)
	n, _ := io.ReadFull(resp.Body, head)
	head = head[:n]
	if looksLikeXML(head) {
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
		return out, md, err
	}
	_ = resp.Body.Close()
	return out, md, &smithyhttp.ResponseError{
		Response: resp,
		Err:      &NonXMLServerError{Status: resp.StatusCode, Start: peek(head)},
	}
}

// looksLikeXML: the first non-space byte of an XML document is '<' and the
// document is not HTML.
func looksLikeXML(b []byte) bool {
	t := bytes.TrimLeft(b, " \t\r\n\ufeff")
	if len(t) == 0 || t[0] != '<' {
		return false
	}
	low := strings.ToLower(string(t[:min(len(t), 64)]))
	return !strings.HasPrefix(low, "<!doctype html") && !strings.HasPrefix(low, "<html")
}

// peek returns the start of a body as valid UTF-8 of at most bodyPeek bytes.
func peek(b []byte) string {
	if len(b) > bodyPeek {
		b = b[:bodyPeek]
	}
	for len(b) > 0 && !utf8.Valid(b) {
		b = b[:len(b)-1]
	}
	return strings.TrimSpace(string(b))
}

// addNonXMLErrors registers the middleware last in the deserialize step,
// which puts it after (inside) every operation's own deserializer.
func addNonXMLErrors(stack *middleware.Stack) error {
	return stack.Deserialize.Add(nonXMLErrors{}, middleware.After)
}
