package awsclient

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// TestNonXMLServerError: a 5xx with an HTML body (what moto answers for
// snapshot TagSpecifications in CreateImage) is reported with its status
// and the start of its body; an EC2 error document still decodes.
func TestNonXMLServerError(t *testing.T) {
	for _, tc := range []struct {
		name, ctype, body string
		status            int
		want, notWant     string
		code              string
	}{
		{"moto html", "text/html", "<!DOCTYPE HTML>\n<html><title>500 Internal Server Error</title><p>NotImplementedError</p></html>", 500,
			`HTTP 500 Internal Server Error with a body that is not an EC2 error document: "<!DOCTYPE HTML>\n<html><title>500 Internal Server Error`, "XML syntax", ""},
		{"plain text", "text/plain", "upstream connect error", 503, `HTTP 503 Service Unavailable`, "XML syntax", ""},
		{"huge body", "text/plain", strings.Repeat("x", 1<<20), 502, `HTTP 502 Bad Gateway`, strings.Repeat("x", 201), ""},
		{"ec2 error document", "text/xml", `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>InternalError</Code><Message>boom</Message></Error></Errors><RequestID>r</RequestID></Response>`, 500,
			"boom", "not an EC2 error document", "InternalError"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.ctype)
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			cfg := aws.Config{Region: "us-east-1", Credentials: aws.AnonymousCredentials{}, RetryMaxAttempts: 1}
			cfg.APIOptions = append(cfg.APIOptions, addNonXMLErrors)
			c := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(srv.URL) })
			_, err := c.CreateImage(context.Background(), &ec2.CreateImageInput{InstanceId: aws.String("i-1"), Name: aws.String("n")})
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not contain %q", msg, tc.want)
			}
			if strings.Contains(msg, tc.notWant) {
				t.Errorf("error %.300q contains %.40q", msg, tc.notWant)
			}
			if len(msg) > 2000 {
				t.Errorf("error is %d bytes long", len(msg))
			}
			var nx *NonXMLServerError
			if got := errors.As(err, &nx); got != (tc.code == "") {
				t.Errorf("NonXMLServerError: %v", got)
			}
			if tc.code != "" && !strings.Contains(msg, tc.code) {
				t.Errorf("error %q has no code %s", msg, tc.code)
			}
		})
	}
}
