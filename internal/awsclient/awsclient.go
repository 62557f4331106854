// Package awsclient turns a template's access options into AWS clients,
// through aws-sdk-go-v2's own configuration loading: environment, shared
// config and credentials files with profiles and SSO, web identity, the
// instance metadata service, and the SDK's AWS_ENDPOINT_URL(_EC2). The
// template's options override what the SDK found.
package awsclient

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
)

// DefaultMaxAttempts is how many times a call is tried when max_retries is
// not set: more than the SDK's 3, because parallel builds in CI get
// throttled (Packer issue #10071: "max_retries: 10 worked").
const DefaultMaxAttempts = 8

// AssumeRole is the template's assume_role block (Terraform's AWS
// provider shape).
type AssumeRole struct {
	RoleARN           string            `hcl:"role_arn,optional"`
	DurationSeconds   int               `hcl:"duration_seconds,optional"`
	ExternalID        string            `hcl:"external_id,optional"`
	Policy            string            `hcl:"policy,optional"`
	PolicyARNs        []string          `hcl:"policy_arns,optional"`
	SessionName       string            `hcl:"session_name,optional"`
	Tags              map[string]string `hcl:"tags,optional"`
	TransitiveTagKeys []string          `hcl:"transitive_tag_keys,optional"`
}

// Options are the template's access options. Zero values leave the SDK's
// configuration alone.
type Options struct {
	Region                   string
	Profile                  string
	SharedCredentialsFile    string
	AccessKey, SecretKey     string
	Token                    string
	AssumeRole               *AssumeRole
	CustomEndpointEC2        string
	MaxRetries               int
	SkipCredentialValidation bool
	// SkipMetadataAPICheck keeps the SDK from asking the instance
	// metadata service for credentials or a region (Packer's
	// skip_metadata_api_check: endpoints without IMDS).
	SkipMetadataAPICheck bool
	// InsecureSkipTLSVerify accepts any TLS certificate (test endpoints).
	InsecureSkipTLSVerify bool
}

// Shared is what all builds of one run share: one adaptive retryer, whose
// client-side rate limiter backs every build off together when EC2
// throttles, instead of each build hammering the API on its own; and the
// identities already validated, so that builds with the same credentials
// check them once per run.
type Shared struct {
	retryer aws.RetryerV2
	load    ConfigLoader

	mu         sync.Mutex
	identities map[[sha256.Size]byte]*identityCall
}

// identityCall is one credential check; its lock makes concurrent builds
// with the same credentials wait for the first one's answer.
type identityCall struct {
	mu sync.Mutex
	id *Identity
}

// NewShared returns the state shared by the builds of one run.
func NewShared() *Shared {
	return NewSharedWith(nil)
}

// ConfigLoader loads the SDK's configuration with New's overrides, as
// config.LoadDefaultConfig does (environment, shared files, profiles).
type ConfigLoader func(ctx context.Context, optFns ...func(*config.LoadOptions) error) (aws.Config, error)

// NewSharedWith is NewShared whose sessions load their configuration with
// load (nil: config.LoadDefaultConfig): the command's factory hands its
// AWS configuration to everything the command opens.
func NewSharedWith(load ConfigLoader) *Shared {
	if load == nil {
		load = config.LoadDefaultConfig
	}
	return &Shared{retryer: retry.NewAdaptiveMode(), load: load}
}

// Session is one build's AWS access: a configuration and EC2 clients per
// region, created on first use.
type Session struct {
	cfg      aws.Config
	opts     Options
	mu       sync.Mutex
	clients  map[string]*ec2.Client
	Identity *Identity
}

// Identity is who the credentials belong to.
type Identity struct {
	Account string
	ARN     string
}

// New loads the SDK configuration with the template's overrides and, unless
// skip_credential_validation, checks the credentials with STS
// GetCallerIdentity, so a build with bad credentials fails before it
// creates anything.
func New(ctx context.Context, shared *Shared, opts Options) (*Session, error) {
	if shared == nil {
		shared = NewShared()
	}
	var loadOpts []func(*config.LoadOptions) error
	if opts.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(opts.Region))
	}
	if opts.Profile != "" {
		loadOpts = append(loadOpts, config.WithSharedConfigProfile(opts.Profile))
	}
	if opts.SharedCredentialsFile != "" {
		loadOpts = append(loadOpts, config.WithSharedCredentialsFiles([]string{opts.SharedCredentialsFile}))
	}
	if opts.AccessKey != "" {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(opts.AccessKey, opts.SecretKey, opts.Token)))
	}
	if opts.SkipMetadataAPICheck {
		loadOpts = append(loadOpts, config.WithEC2IMDSClientEnableState(imds.ClientDisabled))
	}
	if opts.InsecureSkipTLSVerify {
		loadOpts = append(loadOpts, config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
			if tr.TLSClientConfig == nil {
				tr.TLSClientConfig = &tls.Config{}
			}
			tr.TLSClientConfig.InsecureSkipVerify = true
		})))
	}
	attempts := DefaultMaxAttempts
	if opts.MaxRetries > 0 {
		attempts = opts.MaxRetries + 1
	}
	loadOpts = append(loadOpts, config.WithRetryer(func() aws.Retryer {
		return retry.AddWithMaxAttempts(shared.retryer, attempts)
	}))
	cfg, err := shared.load(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	// Wrapped after loading, so that the SDK can still add a custom CA
	// bundle to its own client.
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = awshttp.NewBuildableClient()
	}
	cfg.HTTPClient = readOnlyBodies{cfg.HTTPClient}
	cfg.APIOptions = append(cfg.APIOptions, addNonXMLErrors)
	if cfg.Region == "" {
		return nil, errors.New("no AWS region: set region in the template or AWS_REGION")
	}
	if ar := opts.AssumeRole; ar != nil && ar.RoleARN != "" {
		cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), ar.RoleARN, func(o *stscreds.AssumeRoleOptions) {
			if ar.SessionName != "" {
				o.RoleSessionName = ar.SessionName
			}
			if ar.DurationSeconds > 0 {
				o.Duration = time.Duration(ar.DurationSeconds) * time.Second
			}
			if ar.ExternalID != "" {
				o.ExternalID = aws.String(ar.ExternalID)
			}
			if ar.Policy != "" {
				o.Policy = aws.String(ar.Policy)
			}
			for _, arn := range ar.PolicyARNs {
				o.PolicyARNs = append(o.PolicyARNs, ststypes.PolicyDescriptorType{Arn: aws.String(arn)})
			}
			for k, v := range ar.Tags {
				o.Tags = append(o.Tags, ststypes.Tag{Key: aws.String(k), Value: aws.String(v)})
			}
			o.TransitiveTagKeys = ar.TransitiveTagKeys
		}))
	}
	s := &Session{cfg: cfg, opts: opts, clients: map[string]*ec2.Client{}}
	if !opts.SkipCredentialValidation {
		id, err := shared.identity(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("validate AWS credentials (sts GetCallerIdentity; set skip_credential_validation to skip): %w", err)
		}
		s.Identity = id
	}
	return s, nil
}

// identity asks STS who the credentials of cfg belong to, once per run for
// the same credentials and region: a failure is not remembered, so that
// the next build (or a cancelled one's successor) asks again.
func (sh *Shared) identity(ctx context.Context, cfg aws.Config) (*Identity, error) {
	call := &identityCall{}
	if key, ok := identityKey(ctx, cfg); ok {
		sh.mu.Lock()
		if sh.identities == nil {
			sh.identities = map[[sha256.Size]byte]*identityCall{}
		}
		if c, had := sh.identities[key]; had {
			call = c
		} else {
			sh.identities[key] = call
		}
		sh.mu.Unlock()
	}
	call.mu.Lock()
	defer call.mu.Unlock()
	if call.id != nil {
		id := *call.id
		return &id, nil
	}
	out, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return nil, err
	}
	call.id = &Identity{Account: aws.ToString(out.Account), ARN: aws.ToString(out.Arn)}
	slog.Debug("AWS credentials validated", "account", call.id.Account, "arn", call.id.ARN)
	id := *call.id
	return &id, nil
}

// identityKey names the credentials cfg resolves to in its region; only a
// hash is kept, never the secret. Credentials that cannot be retrieved
// here are checked by STS uncached, which reports why.
func identityKey(ctx context.Context, cfg aws.Config) ([sha256.Size]byte, bool) {
	if cfg.Credentials == nil {
		return [sha256.Size]byte{}, false
	}
	c, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return [sha256.Size]byte{}, false
	}
	return sha256.Sum256([]byte(cfg.Region + "\x00" + c.AccessKeyID + "\x00" + c.SecretAccessKey + "\x00" + c.SessionToken)), true
}

// Region is the build region.
func (s *Session) Region() string { return s.cfg.Region }

// Config is the loaded configuration (for other service clients).
func (s *Session) Config() aws.Config { return s.cfg }

// EC2 returns the EC2 client of a region ("" is the build region).
func (s *Session) EC2(region string) *ec2.Client {
	if region == "" {
		region = s.cfg.Region
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clients[region]; ok {
		return c
	}
	c := ec2.NewFromConfig(s.cfg, func(o *ec2.Options) {
		o.Region = region
		if s.opts.CustomEndpointEC2 != "" {
			o.BaseEndpoint = aws.String(s.opts.CustomEndpointEC2)
		}
	})
	s.clients[region] = c
	return c
}

// HTTPClient returns c (nil: a default http.Client) with the request-body
// race ruled out (see readOnlyBodies): for clients built outside New, such
// as tests' and tools' own EC2 clients.
func HTTPClient(c aws.HTTPClient) aws.HTTPClient {
	if c == nil {
		c = &http.Client{}
	}
	return readOnlyBodies{c}
}

// readOnlyBodies works around a smithy-go race: the SDK closes the request
// body as soon as the response headers arrive, the body's WriteTo then
// fails, and net/http, still finishing the request write, closes the
// connection while a large response is being read ("deserialization
// failed ... use of closed network connection"). Without WriteTo the
// transport copies through Read, which ends with a clean EOF.
type readOnlyBodies struct{ c aws.HTTPClient }

func (h readOnlyBodies) Do(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = struct {
			io.Reader
			io.Closer
		}{r.Body, r.Body}
	}
	return h.c.Do(r)
}
