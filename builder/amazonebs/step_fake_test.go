package amazonebs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/amibake/amibake/internal/ledger"
	"github.com/amibake/amibake/internal/ui"
)

// fakeEC2 answers the few calls a step test expects and records every
// call. It embeds EC2API unset: a call the test did not plan for panics.
type fakeEC2 struct {
	EC2API
	mu    sync.Mutex
	calls []string

	runInstances    func(*ec2.RunInstancesInput) (*ec2.RunInstancesOutput, error)
	describe        func(*ec2.DescribeInstancesInput) (*ec2.DescribeInstancesOutput, error)
	terminate       func(*ec2.TerminateInstancesInput) error
	stop            func(*ec2.StopInstancesInput) error
	modifyInstance  func(*ec2.ModifyInstanceAttributeInput) error
	modifyImage     func(*ec2.ModifyImageAttributeInput) error
	modifySnapshot  func(*ec2.ModifySnapshotAttributeInput) error
	enableDeprecate func(*ec2.EnableImageDeprecationInput) error
}

func (f *fakeEC2) record(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *fakeEC2) log() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.calls, "\n")
}

func (f *fakeEC2) RunInstances(_ context.Context, in *ec2.RunInstancesInput, _ ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error) {
	f.record("RunInstances %s", aws.ToString(in.ClientToken))
	return f.runInstances(in)
}

func (f *fakeEC2) DescribeInstances(_ context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	what := strings.Join(in.InstanceIds, ",")
	for _, fl := range in.Filters {
		what += aws.ToString(fl.Name) + "=" + strings.Join(fl.Values, ",")
	}
	f.record("DescribeInstances %s", what)
	return f.describe(in)
}

func (f *fakeEC2) TerminateInstances(_ context.Context, in *ec2.TerminateInstancesInput, _ ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error) {
	f.record("TerminateInstances %s", strings.Join(in.InstanceIds, ","))
	return &ec2.TerminateInstancesOutput{}, f.terminate(in)
}

func (f *fakeEC2) StopInstances(_ context.Context, in *ec2.StopInstancesInput, _ ...func(*ec2.Options)) (*ec2.StopInstancesOutput, error) {
	f.record("StopInstances %s", strings.Join(in.InstanceIds, ","))
	return &ec2.StopInstancesOutput{}, f.stop(in)
}

func (f *fakeEC2) ModifyInstanceAttribute(_ context.Context, in *ec2.ModifyInstanceAttributeInput, _ ...func(*ec2.Options)) (*ec2.ModifyInstanceAttributeOutput, error) {
	what := "sriov"
	if in.EnaSupport != nil {
		what = fmt.Sprintf("ena=%t", aws.ToBool(in.EnaSupport.Value))
	}
	f.record("ModifyInstanceAttribute %s %s", aws.ToString(in.InstanceId), what)
	return &ec2.ModifyInstanceAttributeOutput{}, f.modifyInstance(in)
}

func (f *fakeEC2) ModifyImageAttribute(_ context.Context, in *ec2.ModifyImageAttributeInput, _ ...func(*ec2.Options)) (*ec2.ModifyImageAttributeOutput, error) {
	f.record("ModifyImageAttribute %s", aws.ToString(in.ImageId))
	return &ec2.ModifyImageAttributeOutput{}, f.modifyImage(in)
}

func (f *fakeEC2) ModifySnapshotAttribute(_ context.Context, in *ec2.ModifySnapshotAttributeInput, _ ...func(*ec2.Options)) (*ec2.ModifySnapshotAttributeOutput, error) {
	f.record("ModifySnapshotAttribute %s", aws.ToString(in.SnapshotId))
	return &ec2.ModifySnapshotAttributeOutput{}, f.modifySnapshot(in)
}

func (f *fakeEC2) EnableImageDeprecation(_ context.Context, in *ec2.EnableImageDeprecationInput, _ ...func(*ec2.Options)) (*ec2.EnableImageDeprecationOutput, error) {
	f.record("EnableImageDeprecation %s", aws.ToString(in.ImageId))
	return &ec2.EnableImageDeprecationOutput{}, f.enableDeprecate(in)
}

// journalLog is a run journal that writes down what a step records.
type journalLog struct {
	mu    sync.Mutex
	lines []string
}

func (j *journalLog) add(format string, args ...any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.lines = append(j.lines, fmt.Sprintf(format, args...))
}

func (j *journalLog) Intend(kind ledger.Kind, _, token string) (string, error) {
	j.add("intend %s %s", kind, token)
	return "e-" + token, nil
}
func (j *journalLog) Created(entry, id string) error { j.add("created %s %s", entry, id); return nil }
func (j *journalLog) Resolved(entry string) error    { j.add("resolved %s", entry); return nil }
func (j *journalLog) Deleted(kind ledger.Kind, _, id string) error {
	j.add("deleted %s %s", kind, id)
	return nil
}

func (j *journalLog) String() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return strings.Join(j.lines, "\n")
}

// instanceIn answers DescribeInstances with instance id in state.
func instanceIn(id string, state types.InstanceStateName) func(*ec2.DescribeInstancesInput) (*ec2.DescribeInstancesOutput, error) {
	return func(*ec2.DescribeInstancesInput) (*ec2.DescribeInstancesOutput, error) {
		return &ec2.DescribeInstancesOutput{Reservations: []types.Reservation{{Instances: []types.Instance{{
			InstanceId: aws.String(id), State: &types.InstanceState{Name: state}}}}}}, nil
	}
}

func apiError(code string) error {
	return &smithy.GenericAPIError{Code: code, Message: code + " (fake)"}
}

// fakeState is reqState's State talking to f, with quick polls.
func fakeState(t *testing.T, hcl string, f *fakeEC2) (*State, *recordingUI) {
	u := &recordingUI{}
	s := reqState(t, hcl)
	s.UI, s.Secrets = u, &ui.Secrets{}
	s.Waits = Waits{MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}
	s.EC2 = func(string) EC2API { return f }
	return s, u
}

// TestStepLaunchFake: what stepLaunch and its cleanup call when
// RunInstances fails in each way that matters.
func TestStepLaunchFake(t *testing.T) {
	launched := func(*ec2.RunInstancesInput) (*ec2.RunInstancesOutput, error) {
		return &ec2.RunInstancesOutput{Instances: []types.Instance{{InstanceId: aws.String("i-1")}}}, nil
	}
	tests := []struct {
		name        string
		fake        *fakeEC2
		wantErr     string // "" for success
		wantCalls   string // Run's, then Cleanup's after "--"
		wantLog     string
		wantCleanup bool   // the cleanup terminates
		wantJournal string // what the run journal got, Run's and Cleanup's
	}{
		{
			// EC2 sends it as a server error (HTTP 500), yet it is an answer.
			name: "refused for capacity: nothing to clean up, and a hint",
			fake: &fakeEC2{runInstances: func(*ec2.RunInstancesInput) (*ec2.RunInstancesOutput, error) {
				return nil, &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: 500}},
					Err: apiError("InsufficientInstanceCapacity")}
			}},
			wantErr:   "api error InsufficientInstanceCapacity: InsufficientInstanceCapacity (fake); EC2 has no capacity",
			wantCalls: "RunInstances token-1\n--",
			// EC2 answered: the intent is settled, not left for a cleanup.
			wantJournal: "intend instance token-1\nresolved e-token-1",
		},
		{
			name: "answer lost: the cleanup finds the instance by its client token and terminates it",
			fake: &fakeEC2{
				runInstances: func(*ec2.RunInstancesInput) (*ec2.RunInstancesOutput, error) {
					return nil, errors.New("read tcp: connection reset by peer")
				},
				describe:  instanceIn("i-lost", types.InstanceStateNameRunning),
				terminate: func(*ec2.TerminateInstancesInput) error { return nil },
			},
			wantErr:     "launch source instance: read tcp: connection reset by peer",
			wantCalls:   "RunInstances token-1\n--\nDescribeInstances client-token=token-1\nTerminateInstances i-lost",
			wantLog:     "==> Terminating the source AWS instance...",
			wantCleanup: true,
			wantJournal: "intend instance token-1\ncreated e-token-1 i-lost\ndeleted instance i-lost",
		},
		{
			name: "key pair not visible yet: retried with the same client token",
			fake: &fakeEC2{
				runInstances: func() func(*ec2.RunInstancesInput) (*ec2.RunInstancesOutput, error) {
					n := 0
					return func(in *ec2.RunInstancesInput) (*ec2.RunInstancesOutput, error) {
						if n++; n == 1 {
							return nil, apiError("InvalidKeyPair.NotFound")
						}
						return launched(in)
					}
				}(),
				describe:  instanceIn("i-1", types.InstanceStateNameRunning),
				terminate: func(*ec2.TerminateInstancesInput) error { return nil },
			},
			wantCalls:   "RunInstances token-1\nRunInstances token-1\nDescribeInstances i-1\n--\nTerminateInstances i-1",
			wantLog:     "    Instance ID: i-1",
			wantCleanup: true,
			wantJournal: "intend instance token-1\ncreated e-token-1 i-1\ndeleted instance i-1",
		},
		{
			name: "no instance in the answer",
			fake: &fakeEC2{runInstances: func(*ec2.RunInstancesInput) (*ec2.RunInstancesOutput, error) {
				return &ec2.RunInstancesOutput{}, nil
			}},
			wantErr:   "launch source instance: EC2 returned 0 instances",
			wantCalls: "RunInstances token-1\n--",
			// Not EC2's answer to a launch: nothing is called settled.
			wantJournal: "intend instance token-1",
		},
		{
			name: "the instance dies while starting",
			fake: &fakeEC2{
				runInstances: launched,
				describe:     instanceIn("i-1", types.InstanceStateNameTerminated),
				terminate:    func(*ec2.TerminateInstancesInput) error { return nil },
			},
			wantErr:     "instance i-1 is terminated while waiting for it to be running",
			wantCalls:   "RunInstances token-1\nDescribeInstances i-1\n--\nTerminateInstances i-1",
			wantCleanup: true,
			wantJournal: "intend instance token-1\ncreated e-token-1 i-1\ndeleted instance i-1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.fake
			s, u := fakeState(t, "", f)
			j := &journalLog{}
			s.Ledger = j
			st := &stepLaunch{token: "token-1"}
			err := st.Run(context.Background(), s)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Run: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Run: %v, want %q", err, tt.wantErr)
			}
			f.record("--")
			if err := st.Cleanup(context.Background(), s); err != nil {
				t.Fatalf("Cleanup: %v", err)
			}
			if got := f.log(); got != tt.wantCalls {
				t.Errorf("calls:\n%s\nwant:\n%s", got, tt.wantCalls)
			}
			if tt.wantLog != "" && !strings.Contains(u.String(), tt.wantLog) {
				t.Errorf("log lacks %q:\n%s", tt.wantLog, u)
			}
			if terminated := strings.Contains(u.String(), "Terminating the source AWS instance"); terminated != tt.wantCleanup {
				t.Errorf("terminated = %t, want %t:\n%s", terminated, tt.wantCleanup, u)
			}
			if got := j.String(); got != tt.wantJournal {
				t.Errorf("journal:\n%s\nwant:\n%s", got, tt.wantJournal)
			}
		})
	}
}

// TestStepStopFake: stop, wait, then ena_support and sriov_support; a
// refused stop ends the step before any wait.
func TestStepStopFake(t *testing.T) {
	ok := func(*ec2.ModifyInstanceAttributeInput) error { return nil }
	tests := []struct {
		name, hcl string
		fake      *fakeEC2
		wantErr   string
		wantCalls string
	}{
		{"stop, wait, attributes", "ena_support = true\nsriov_support = true", &fakeEC2{
			stop: func(*ec2.StopInstancesInput) error { return nil }, describe: instanceIn("i-1", types.InstanceStateNameStopped), modifyInstance: ok,
		}, "", "StopInstances i-1\nDescribeInstances i-1\nModifyInstanceAttribute i-1 ena=true\nModifyInstanceAttribute i-1 sriov"},
		{"stop refused", "ena_support = true", &fakeEC2{stop: func(*ec2.StopInstancesInput) error { return apiError("UnsupportedOperation") }},
			"stop source instance i-1: api error UnsupportedOperation", "StopInstances i-1"},
		{"disable_stop_instance: wait only", "disable_stop_instance = true", &fakeEC2{describe: instanceIn("i-1", types.InstanceStateNameStopped)},
			"", "DescribeInstances i-1"},
		{"ena_support refused", "ena_support = false", &fakeEC2{
			stop: func(*ec2.StopInstancesInput) error { return nil }, describe: instanceIn("i-1", types.InstanceStateNameStopped),
			modifyInstance: func(*ec2.ModifyInstanceAttributeInput) error { return apiError("InvalidParameterCombination") },
		}, "set ENA support on instance i-1", "StopInstances i-1\nDescribeInstances i-1\nModifyInstanceAttribute i-1 ena=false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.fake
			s, _ := fakeState(t, tt.hcl, f)
			s.Instance = &types.Instance{InstanceId: aws.String("i-1")}
			err := stepStop{}.Run(context.Background(), s)
			if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Run: %v, want %q", err, tt.wantErr)
			}
			if got := f.log(); got != tt.wantCalls {
				t.Errorf("calls:\n%s\nwant:\n%s", got, tt.wantCalls)
			}
		})
	}
}

// TestStepShareFake: per region (sorted), the AMI's launch permission,
// each snapshot's create-volume permission (NotFound on a new copy is
// retried), then the deprecation.
func TestStepShareFake(t *testing.T) {
	notFoundOnce := func() func(*ec2.ModifySnapshotAttributeInput) error {
		seen := map[string]bool{}
		return func(in *ec2.ModifySnapshotAttributeInput) error {
			if id := aws.ToString(in.SnapshotId); !seen[id] {
				seen[id] = true
				return apiError("InvalidSnapshot.NotFound")
			}
			return nil
		}
	}
	ok := func(*ec2.ModifyImageAttributeInput) error { return nil }
	tests := []struct {
		name, hcl string
		fake      *fakeEC2
		wantErr   string
		wantCalls string
	}{
		{"everything", "ami_users = [\"111122223333\"]\nsnapshot_users = [\"111122223333\"]\ndeprecate_at = \"2030-01-02T03:04:05Z\"", &fakeEC2{
			modifyImage: ok, modifySnapshot: notFoundOnce(), enableDeprecate: func(*ec2.EnableImageDeprecationInput) error { return nil },
		}, "", strings.Join([]string{
			"ModifyImageAttribute ami-a", "ModifySnapshotAttribute snap-a", "ModifySnapshotAttribute snap-a", "EnableImageDeprecation ami-a",
			"ModifyImageAttribute ami-b", "ModifySnapshotAttribute snap-b", "ModifySnapshotAttribute snap-b", "EnableImageDeprecation ami-b",
		}, "\n")},
		{"nothing to share: no call", "", &fakeEC2{}, "", ""},
		{"refused: the error names the AMI and region", `ami_groups = ["all"]`, &fakeEC2{
			modifyImage: func(*ec2.ModifyImageAttributeInput) error { return apiError("OperationNotPermitted") },
		}, "share AMI ami-a in ap-northeast-1: api error OperationNotPermitted", "ModifyImageAttribute ami-a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.fake
			s, _ := fakeState(t, tt.hcl, f)
			s.AMIs = map[string]string{"us-west-2": "ami-b", "ap-northeast-1": "ami-a"}
			s.Snapshots = map[string][]string{"us-west-2": {"snap-b"}, "ap-northeast-1": {"snap-a"}}
			err := stepShare{}.Run(context.Background(), s)
			if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Run: %v, want %q", err, tt.wantErr)
			}
			if got := f.log(); got != tt.wantCalls {
				t.Errorf("calls:\n%s\nwant:\n%s", got, tt.wantCalls)
			}
		})
	}
}
