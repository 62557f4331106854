package awsclient

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// fakeAWS answers STS GetCallerIdentity and EC2 DescribeRegions, and
// remembers the access key ids that signed the requests.
type fakeAWS struct {
	mu      sync.Mutex
	keys    []string
	actions []string
	deny    bool
}

func (f *fakeAWS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	auth := r.Header.Get("Authorization")
	_, cred, _ := strings.Cut(auth, "Credential=")
	key, _, _ := strings.Cut(cred, "/")
	f.mu.Lock()
	f.keys = append(f.keys, key)
	f.actions = append(f.actions, r.Form.Get("Action"))
	f.mu.Unlock()
	if f.deny {
		w.WriteHeader(403)
		_, _ = w.Write([]byte(`<ErrorResponse><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message></Error><RequestId>1</RequestId></ErrorResponse>`))
		return
	}
	switch r.Form.Get("Action") {
	case "GetCallerIdentity":
		_, _ = w.Write([]byte(`<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:iam::111122223333:user/t</Arn><UserId>U</UserId><Account>111122223333</Account></GetCallerIdentityResult></GetCallerIdentityResponse>`))
	case "DescribeRegions":
		_, _ = w.Write([]byte(`<DescribeRegionsResponse><requestId>1</requestId><regionInfo><item><regionName>eu-west-1</regionName></item></regionInfo></DescribeRegionsResponse>`))
	default:
		w.WriteHeader(400)
	}
}

// isolate points the SDK at empty config files and no instance metadata,
// so the test sees only what it sets.
func isolate(t *testing.T) string {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL_STS", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("AWS_CONFIG_FILE", empty)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", empty)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	return dir
}

func TestNewStaticCredentialsAndEnvEndpoint(t *testing.T) {
	isolate(t)
	fake := &fakeAWS{}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	t.Setenv("AWS_ENDPOINT_URL", srv.URL)
	s, err := New(context.Background(), nil, Options{Region: "us-east-1", AccessKey: "AKIATEST", SecretKey: "s3cr3t-value"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Identity == nil || s.Identity.Account != "111122223333" {
		t.Fatalf("Identity = %+v", s.Identity)
	}
	if _, err := s.EC2("eu-west-1").DescribeRegions(context.Background(), &ec2.DescribeRegionsInput{}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(fake.keys, ",") != "AKIATEST,AKIATEST" || strings.Join(fake.actions, ",") != "GetCallerIdentity,DescribeRegions" {
		t.Errorf("calls %v signed by %v", fake.actions, fake.keys)
	}
}

// TestSharedConfigLoader: a run whose Shared has its own loader gets its
// configuration from there (the endpoint here), with New's overrides
// still applied, and the process environment names no endpoint.
func TestSharedConfigLoader(t *testing.T) {
	isolate(t)
	fake := &fakeAWS{}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	calls := 0
	shared := NewSharedWith(func(ctx context.Context, optFns ...func(*config.LoadOptions) error) (aws.Config, error) {
		calls++
		return config.LoadDefaultConfig(ctx, append([]func(*config.LoadOptions) error{config.WithBaseEndpoint(srv.URL)}, optFns...)...)
	})
	s, err := New(context.Background(), shared, Options{Region: "us-east-1", AccessKey: "AKIALOADER", SecretKey: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 || s.Region() != "us-east-1" || strings.Join(fake.actions, ",") != "GetCallerIdentity" || strings.Join(fake.keys, ",") != "AKIALOADER" {
		t.Errorf("loader called %d times; region %q; calls %v signed by %v", calls, s.Region(), fake.actions, fake.keys)
	}
	failing := NewSharedWith(func(context.Context, ...func(*config.LoadOptions) error) (aws.Config, error) {
		return aws.Config{}, errors.New("no configuration here")
	})
	if _, err := New(context.Background(), failing, Options{Region: "us-east-1"}); err == nil || !strings.Contains(err.Error(), "load AWS configuration: no configuration here") {
		t.Errorf("err = %v", err)
	}
}

func TestNewProfileAndCustomEndpoint(t *testing.T) {
	dir := isolate(t)
	fake := &fakeAWS{}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	creds := filepath.Join(dir, "credentials")
	if err := os.WriteFile(creds, []byte("[ci]\naws_access_key_id = AKIAPROFILE\naws_secret_access_key = x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), NewShared(), Options{Region: "us-east-1", Profile: "ci", SharedCredentialsFile: creds,
		CustomEndpointEC2: srv.URL, SkipCredentialValidation: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.EC2("").DescribeRegions(context.Background(), &ec2.DescribeRegionsInput{}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(fake.keys, ",") != "AKIAPROFILE" {
		t.Errorf("signed by %v, want only the EC2 call by AKIAPROFILE (no STS call)", fake.keys)
	}
}

func TestNewBadCredentials(t *testing.T) {
	isolate(t)
	fake := &fakeAWS{deny: true}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	t.Setenv("AWS_ENDPOINT_URL", srv.URL)
	_, err := New(context.Background(), nil, Options{Region: "us-east-1", AccessKey: "AKIABAD", SecretKey: "very-secret-value", MaxRetries: 1})
	if err == nil || !strings.Contains(err.Error(), "validate AWS credentials") || !strings.Contains(err.Error(), "InvalidClientTokenId") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "very-secret-value") {
		t.Error("error shows the secret key")
	}
}

func TestNewNoRegion(t *testing.T) {
	isolate(t)
	_, err := New(context.Background(), nil, Options{AccessKey: "a", SecretKey: "b", SkipCredentialValidation: true})
	if err == nil || !strings.Contains(err.Error(), "no AWS region") {
		t.Fatalf("err = %v", err)
	}
}

func TestInsecureSkipTLSVerify(t *testing.T) {
	isolate(t)
	srv := httptest.NewTLSServer(&fakeAWS{})
	defer srv.Close()
	t.Setenv("AWS_ENDPOINT_URL", srv.URL)
	opts := Options{Region: "us-east-1", AccessKey: "AKIATEST", SecretKey: "x", MaxRetries: 1}
	if _, err := New(context.Background(), nil, opts); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a self-signed endpoint was trusted: %v", err)
	}
	opts.InsecureSkipTLSVerify = true
	if _, err := New(context.Background(), nil, opts); err != nil {
		t.Fatal(err)
	}
}

// flaky fails the first DescribeRegions call with one fault class, then
// answers; it counts the attempts.
type flaky struct {
	fakeAWS
	fault    string
	attempts int
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	if r.Form.Get("Action") != "DescribeRegions" {
		f.fakeAWS.ServeHTTP(w, r)
		return
	}
	f.mu.Lock()
	f.attempts++
	first := f.attempts == 1
	f.mu.Unlock()
	if !first {
		f.fakeAWS.ServeHTTP(w, r)
		return
	}
	apiError := func(status int, code string) {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`<Response><Errors><Error><Code>` + code + `</Code><Message>injected</Message></Error></Errors><RequestID>1</RequestID></Response>`))
	}
	switch f.fault {
	case "throttle":
		apiError(503, "RequestLimitExceeded")
	case "internal":
		apiError(500, "InternalError")
	case "unavailable":
		apiError(503, "Unavailable")
	case "drop":
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	}
}

func TestRetriesFaultClasses(t *testing.T) {
	isolate(t)
	for _, fault := range []string{"throttle", "internal", "unavailable", "drop"} {
		t.Run(fault, func(t *testing.T) {
			f := &flaky{fault: fault}
			srv := httptest.NewServer(f)
			defer srv.Close()
			s, err := New(context.Background(), nil, Options{Region: "us-east-1", AccessKey: "AKIATEST", SecretKey: "x",
				CustomEndpointEC2: srv.URL, SkipCredentialValidation: true})
			if err != nil {
				t.Fatal(err)
			}
			out, err := s.EC2("").DescribeRegions(context.Background(), &ec2.DescribeRegionsInput{})
			if err != nil {
				t.Fatalf("%s was not retried: %v", fault, err)
			}
			if len(out.Regions) != 1 || f.attempts != 2 {
				t.Fatalf("%s: %d regions after %d attempts, want 1 after 2", fault, len(out.Regions), f.attempts)
			}
		})
	}
}

// TestReadOnlyBodies: the transport must not see the request body's
// WriteTo (see readOnlyBodies).
func TestReadOnlyBodies(t *testing.T) {
	var sawWriterTo bool
	c := readOnlyBodies{doFunc(func(r *http.Request) (*http.Response, error) {
		_, sawWriterTo = r.Body.(io.WriterTo)
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	})}
	req := httptest.NewRequest("POST", "http://127.0.0.1/", bytes.NewReader([]byte("Action=DescribeRegions")))
	if _, err := c.Do(req); err != nil {
		t.Fatal(err)
	}
	if sawWriterTo {
		t.Fatal("the request body still offers WriteTo")
	}
	if b, _ := io.ReadAll(req.Body); string(b) != "Action=DescribeRegions" {
		t.Fatalf("body changed: %q", b)
	}
}

type doFunc func(*http.Request) (*http.Response, error)

func (f doFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }

func TestSharedChecksCredentialsOncePerRun(t *testing.T) {
	isolate(t)
	fake := &fakeAWS{}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	t.Setenv("AWS_ENDPOINT_URL", srv.URL)
	ctx := context.Background()
	shared := NewShared()
	calls := func() int {
		fake.mu.Lock()
		defer fake.mu.Unlock()
		return strings.Count(strings.Join(fake.actions, ","), "GetCallerIdentity")
	}
	opts := func(region, key string) Options {
		return Options{Region: region, AccessKey: key, SecretKey: "s3cr3t-value"}
	}
	// Parallel builds with the same credentials: one check between them.
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s, err := New(ctx, shared, opts("us-east-1", "AKIAONE")); err != nil || s.Identity == nil || s.Identity.Account != "111122223333" {
				t.Errorf("New: %v, identity %+v", err, s)
			}
		}()
	}
	wg.Wait()
	for _, tc := range []struct {
		name  string
		opts  Options
		deny  bool
		fresh bool // a new run: NewShared
		want  int  // GetCallerIdentity calls so far
		fails bool
	}{
		{"same credentials again", opts("us-east-1", "AKIAONE"), false, false, 1, false},
		{"other credentials", opts("us-east-1", "AKIATWO"), false, false, 2, false},
		{"other region", opts("eu-west-1", "AKIAONE"), false, false, 3, false},
		{"refused, not remembered", opts("us-west-2", "AKIATHREE"), true, false, 4, true},
		{"asked again after a refusal", opts("us-west-2", "AKIATHREE"), false, false, 5, false},
		{"a fresh run checks again", opts("us-east-1", "AKIAONE"), false, true, 6, false},
	} {
		fake.mu.Lock()
		fake.deny = tc.deny
		fake.mu.Unlock()
		sh := shared
		if tc.fresh {
			sh = NewShared()
		}
		_, err := New(ctx, sh, tc.opts)
		if (err != nil) != tc.fails {
			t.Errorf("%s: err = %v", tc.name, err)
		}
		if got := calls(); got != tc.want {
			t.Errorf("%s: %d GetCallerIdentity calls, want %d", tc.name, got, tc.want)
		}
	}
}
