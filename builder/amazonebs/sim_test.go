package amazonebs

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/amibake/amibake/internal/awsclient"
	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/ui"
)

// sim starts a zero-latency simulator with real SSH hosts (root only) and
// checks, when the test ends, that only images and snapshots are left.
func sim(t testing.TB, opts ec2sim.Options) *ec2sim.Server {
	t.Helper()
	if os.Geteuid() != 0 && !opts.NoSSH {
		t.Skip("the simulator's instances run sshd, which needs root (make test runs as root)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := ec2sim.Start(ctx, opts)
	if err != nil {
		cancel()
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() {
		inv := srv.Inventory()
		if !inv.Empty() {
			t.Errorf("resources left behind: %+v", inv.Leftovers())
		}
		_ = srv.Close()
		cancel()
	})
	return srv
}

func simClient(srv *ec2sim.Server, region string) *ec2.Client {
	return ec2.New(ec2.Options{
		Region: region, BaseEndpoint: aws.String(srv.URL()), HTTPClient: awsclient.HTTPClient(nil),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
	})
}

// testState is a State wired to the simulator, for tests of single steps.
func testState(t testing.TB, srv *ec2sim.Server, c *Config) (*State, *recordingUI) {
	u := &recordingUI{}
	var mu sync.Mutex
	clients := map[string]*ec2.Client{}
	st := &State{
		Config: c, Region: c.Region, UI: u, Secrets: &ui.Secrets{}, RunID: "run-1", BuildName: "amazon-ebs",
		Waits: Waits{MinDelay: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond},
		Getenv: func(k string) string {
			if k == "AMIBAKE_CHECKIP_URL" {
				return srv.URL() + "/_sim/myip"
			}
			return ""
		},
		EC2: func(region string) EC2API {
			if region == "" {
				region = c.Region
			}
			mu.Lock()
			defer mu.Unlock()
			if clients[region] == nil {
				clients[region] = simClient(srv, region)
			}
			return clients[region]
		},
	}
	return st, u
}

// recordingUI keeps what the build said.
type recordingUI struct {
	mu    sync.Mutex
	lines []string
}

func (r *recordingUI) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, s)
}
func (r *recordingUI) Say(m string)                                { r.add("==> " + m) }
func (r *recordingUI) Message(m string)                            { r.add("    " + m) }
func (r *recordingUI) Error(m string)                              { r.add("!!! " + m) }
func (r *recordingUI) Machine(string, ...string)                   {}
func (r *recordingUI) Ask(context.Context, string) (string, error) { return "", ui.ErrNoPrompt }
func (r *recordingUI) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

func mustConfig(t testing.TB, src string) *Config {
	t.Helper()
	c, diags := NewConfig(hclBlock(t, src))
	if diags.HasErrors() {
		t.Fatalf("config: %s", diags)
	}
	return c
}
