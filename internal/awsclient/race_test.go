package awsclient

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// raceServer is a plain EC2 look-alike that answers as fast as loopback
// allows with a response well over 4 KiB: the conditions of the
// aws-sdk-go-v2 / net/http request-body race (aws/aws-sdk-go-v2 #1825,
// #2737) that a real endpoint, farther away, rarely meets.
func raceServer(t *testing.T) *httptest.Server {
	var items strings.Builder
	for i := range 200 {
		fmt.Fprintf(&items, "<item><reservationId>r-%017d</reservationId><ownerId>123456789012</ownerId><instancesSet><item><instanceId>i-%017d</instanceId><instanceState><code>16</code><name>running</name></instanceState></item></instancesSet></item>", i, i)
	}
	body := `<?xml version="1.0" encoding="UTF-8"?><DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>1</requestId><reservationSet>` + items.String() + `</reservationSet></DescribeInstancesResponse>`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		w.Header().Set("Content-Type", "text/xml")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func raceClient(url string, hc aws.HTTPClient) *ec2.Client {
	return ec2.New(ec2.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(url), HTTPClient: hc, RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDRACE", "secret", ""),
	})
}

func describeMany(ctx context.Context, c *ec2.Client, n int) (failed int, last error) {
	for range n {
		out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
		if err == nil && len(out.Reservations) != 200 {
			err = fmt.Errorf("%d reservations, want 200", len(out.Reservations))
		}
		if err != nil {
			failed++
			last = err
		}
	}
	return failed, last
}

// TestRequestBodyRace reproduces the SDK's race against a plain server and
// shows that the transport New installs (readOnlyBodies) rules it out:
// the bare client must fail at least once (else the test reproduces
// nothing), the fixed one never.
func TestRequestBodyRace(t *testing.T) {
	srv := raceServer(t)
	ctx := context.Background()
	bare := raceClient(srv.URL, &http.Client{})
	calls := 0
	var bareErr error
	for calls < 3000 && bareErr == nil {
		_, bareErr = describeMany(ctx, bare, 1)
		calls++
	}
	if bareErr == nil {
		t.Fatalf("the race did not show in %d calls without the fix: this test no longer reproduces it", calls)
	}
	if !strings.Contains(bareErr.Error(), "use of closed network connection") && !strings.Contains(bareErr.Error(), "deserialization failed") {
		t.Fatalf("the bare client failed otherwise than by the race: %v", bareErr)
	}
	const n = 500
	fixed, fixedErr := describeMany(ctx, raceClient(srv.URL, readOnlyBodies{&http.Client{}}), n)
	t.Logf("without the fix the call %d failed (%v); with it %d of %d failed", calls, bareErr, fixed, n)
	if fixed > 0 {
		t.Fatalf("with readOnlyBodies %d of %d calls failed: %v", fixed, n, fixedErr)
	}
}
