package ec2sim_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"

	"github.com/amibake/amibake/internal/ec2sim"
)

// startSim starts an API-only simulator (no SSH) unless opts says
// otherwise, closed when the test ends.
func startSim(t testing.TB, opts ec2sim.Options) *ec2sim.Server {
	t.Helper()
	// The simulator's own API tests assert exact answers: they pin the
	// profile rather than follow EC2SIM_CONSISTENCY (the product's suites do).
	if opts.Consistency.Name == "" && len(opts.Consistency.Lags) == 0 {
		opts.Consistency = ec2sim.NoConsistencyLag()
	}
	srv, err := ec2sim.Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close simulator: %v", err)
		}
	})
	return srv
}

func awsConfig(srv *ec2sim.Server, region string) aws.Config {
	return aws.Config{
		HTTPClient:   &http.Client{Transport: hideWriteTo{http.DefaultTransport}},
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider("AKIASIMULATOR000001", "simulator-secret", ""),
		BaseEndpoint: aws.String(srv.URL()),
	}
}

// client is an aws-sdk-go-v2 EC2 client with nothing but the endpoint
// (and dummy credentials) changed. Retries are off unless asked for, so
// tests see each fault.
func client(srv *ec2sim.Server, region string, retries ...int) *ec2.Client {
	attempts := 1
	if len(retries) > 0 {
		attempts = retries[0]
	}
	return ec2.NewFromConfig(awsConfig(srv, region), func(o *ec2.Options) {
		o.RetryMaxAttempts = attempts
	})
}

// hideWriteTo works around a smithy-go race: the SDK closes the request
// body once response headers arrive, the body's WriteTo then returns
// io.EOF, and net/http, still finishing the request write, takes that for
// a write error and closes the connection while the response body is
// being read. Hiding WriteTo makes the transport use Read, which returns
// a clean EOF.
type hideWriteTo struct{ rt http.RoundTripper }

func (h hideWriteTo) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body = struct {
			io.Reader
			io.Closer
		}{r.Body, r.Body}
	}
	return h.rt.RoundTrip(r)
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
