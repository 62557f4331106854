package amazonebs

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/google/uuid"

	"github.com/amibake/amibake/internal/ledger"
)

// Instance waits are bounded by these unless aws_polling says otherwise.
const (
	instanceWaitLimit = 15 * time.Minute
	imageWaitLimit    = 60 * time.Minute
)

// stepLaunch runs the source instance and waits until it is running.
type stepLaunch struct {
	id    string
	token string
	// unanswered: a RunInstances (or CreateFleet) call with token ended
	// without saying whether it launched (cancelled, connection lost,
	// server error).
	unanswered bool
	// templates are the spot fleets' launch templates: a fleet's
	// instance does not carry the ClientToken, but their id.
	templates []string
	entry     string // the instance's intent in the journal
	// answeredNone: EC2 answered the launch with an error and launched
	// nothing.
	answeredNone bool
}

func (*stepLaunch) Name() string { return "launch source instance" }

func (st *stepLaunch) Run(ctx context.Context, s *State) error {
	if st.token == "" {
		st.token = uuid.NewString()
	}
	l, err := st.launchState(s)
	if err != nil {
		return err
	}
	in := runInstancesInput(s.Config, l)
	if isSpot(s.Config) {
		s.UI.Say("Launching a spot AWS instance...")
	} else {
		s.UI.Say("Launching a source AWS instance...")
		// Packer's lines: run_tags, then run_volume_tags.
		for _, line := range append(addingTagLines(l.RunTags), addingTagLines(l.VolumeTags)...) {
			s.UI.Message(line)
		}
	}
	entry, err := s.intend(ledger.KindInstance, s.Region, st.token)
	if err != nil {
		return fmt.Errorf("record the source instance in the run journal: %w", err)
	}
	st.entry = entry
	if isSpot(s.Config) {
		err = st.launchSpot(ctx, s, in)
	} else {
		err = st.launchOnDemand(ctx, s, s.ec2(""), in)
	}
	if err != nil {
		if st.answeredNone {
			// EC2 said no (no capacity, a bad parameter): nothing for a
			// later cleanup to look for.
			s.resolved(entry)
		}
		return err
	}
	if err := s.created(entry, st.id); err != nil {
		return fmt.Errorf("record instance %s in the run journal: %w", st.id, err)
	}
	s.born(st.id)
	s.Instance = &types.Instance{InstanceId: aws.String(st.id)}
	s.UI.Message("Instance ID: " + st.id)
	return st.waitRunning(ctx, s)
}

// launchState gathers what the launch requests need: user data (read from
// user_data_file), the rendered tags and what the earlier steps found.
func (st *stepLaunch) launchState(s *State) (launchState, error) {
	c := s.Config
	l := launchState{
		ImageID: aws.ToString(s.SourceImage.ImageId), KeyName: s.KeyName,
		SubnetID: s.SubnetID, AZ: s.AZ, SecurityGroupIDs: s.SecurityGroupIDs,
		UserData: c.UserData, Token: st.token, Own: s.ownTags(),
	}
	if c.UserDataFile != "" {
		b, err := os.ReadFile(c.UserDataFile)
		if err != nil {
			return l, fmt.Errorf("read user_data_file: %w", err)
		}
		l.UserData = string(b)
	}
	var err error
	if l.RunTags, err = s.renderTags("run_tags", c.Parsed.RunTags); err != nil {
		return l, err
	}
	if l.VolumeTags, err = s.renderTags("run_volume_tags", c.Parsed.RunVolumeTags); err != nil {
		return l, err
	}
	if isSpot(c) {
		if l.SpotTags, err = s.renderTags("spot_tags", c.Parsed.SpotTags); err != nil {
			return l, err
		}
	}
	return l, nil
}

// launchOnDemand sends RunInstances; st.id is the instance's id after.
func (st *stepLaunch) launchOnDemand(ctx context.Context, s *State, api runInstancesAPI, in *ec2.RunInstancesInput) error {
	var out *ec2.RunInstancesOutput
	// The new key pair and security group may not be visible yet; the
	// ClientToken makes the retries safe.
	err := s.retryNotFound(ctx, "the key pair and security group to be visible", func(ctx context.Context) error {
		var err error
		out, err = api.RunInstances(ctx, in)
		return err
	})
	if err != nil {
		st.unanswered = maybeCreated(ctx, err)
		st.answeredNone = !st.unanswered
		return fmt.Errorf("launch source instance: %w%s", err, launchHint(err))
	}
	if len(out.Instances) != 1 {
		return fmt.Errorf("launch source instance: EC2 returned %d instances", len(out.Instances))
	}
	st.id = aws.ToString(out.Instances[0].InstanceId)
	return nil
}

// launchSpot launches through a spot fleet; st.id is the instance's id after.
func (st *stepLaunch) launchSpot(ctx context.Context, s *State, in *ec2.RunInstancesInput) error {
	res, err := launchSpot(ctx, s, s.ec2(""), in, st.token)
	st.id = res.InstanceID
	if res.Unanswered {
		st.unanswered = true
		st.templates = append(st.templates, res.TemplateID)
	}
	// Every fleet call answered and none launched: nothing to look for.
	st.answeredNone = err != nil && !res.Unanswered && res.InstanceID == ""
	return err
}

// waitRunning waits for the launched instance to run and keeps what EC2
// says of it.
func (st *stepLaunch) waitRunning(ctx context.Context, s *State) error {
	s.UI.Say(fmt.Sprintf("Waiting for instance (%s) to become ready...", st.id))
	running, err := waitInstance(ctx, s, st.id, types.InstanceStateNameRunning)
	if err != nil {
		return err
	}
	s.Instance = running
	if s.Debug {
		for _, l := range debugInstanceLines(running, s.DebugKeyFile, s.Config.SSHUsername) {
			s.UI.Message(l)
		}
	}
	return nil
}

// debugInstanceLines is what -debug shows about the running instance,
// as Packer's (Public DNS, Public IP, Private IP), and how to log in.
func debugInstanceLines(in *types.Instance, keyFile, user string) []string {
	var out []string
	if v := aws.ToString(in.PublicDnsName); v != "" {
		out = append(out, "Public DNS: "+v)
	}
	if v := aws.ToString(in.PublicIpAddress); v != "" {
		out = append(out, "Public IP: "+v)
	}
	if v := aws.ToString(in.PrivateIpAddress); v != "" {
		out = append(out, "Private IP: "+v)
	}
	host := aws.ToString(in.PublicIpAddress)
	if host == "" {
		host = aws.ToString(in.PrivateIpAddress)
	}
	if keyFile != "" && host != "" {
		login := host
		if user != "" {
			login = user + "@" + host
		}
		out = append(out, fmt.Sprintf("SSH key: %s (ssh -i %s %s)", keyFile, keyFile, login))
	}
	return out
}

func (st *stepLaunch) Cleanup(ctx context.Context, s *State) error {
	if st.id == "" && st.unanswered {
		// The launch may have happened all the same: its ClientToken
		// finds it, or a spot fleet's, its launch template.
		st.unanswered = false
		var ids []string
		var err error
		if len(st.templates) > 0 {
			ids, err = s.launchedFromTemplates(ctx, st.templates)
		} else {
			ids, err = s.launchedWithToken(ctx, st.token)
		}
		if err != nil {
			return fmt.Errorf("after an unanswered launch: %w", err)
		}
		if len(ids) > 0 {
			st.id = ids[0]
			s.born(st.id)
			// The intent gets its id, so that the journal can say it is gone.
			if err := s.created(st.entry, st.id); err != nil {
				s.log().Warn("record the instance in the run journal", "id", st.id, "err", err)
			}
		}
	}
	if st.id == "" {
		return nil
	}
	s.UI.Say("Terminating the source AWS instance...")
	if err := terminateInstance(ctx, s, st.id); err != nil {
		s.UI.Error(fmt.Sprintf("Error terminating instance, may still be around: %v", err))
		return err
	}
	s.deleted(ledger.KindInstance, s.Region, st.id)
	st.id = ""
	return nil
}

// stepCleanupVolumes runs before the launch so that its cleanup runs after
// the instance is terminated: it deletes the volumes that were attached at
// launch and do not go away with the instance.
type stepCleanupVolumes struct{}

func (stepCleanupVolumes) Name() string { return "cleanup volumes" }

func (stepCleanupVolumes) Run(context.Context, *State) error { return nil }

func (stepCleanupVolumes) Cleanup(ctx context.Context, s *State) error {
	if s.Instance == nil {
		return nil
	}
	s.UI.Say("Cleaning up any extra volumes...")
	var vols []string
	for _, m := range s.Instance.BlockDeviceMappings {
		if m.Ebs != nil && !aws.ToBool(m.Ebs.DeleteOnTermination) && m.Ebs.VolumeId != nil {
			vols = append(vols, aws.ToString(m.Ebs.VolumeId))
		}
	}
	if len(vols) == 0 {
		s.UI.Say("No volumes to clean up, skipping")
		return nil
	}
	var api deleteVolumeAPI = s.ec2("")
	id := aws.ToString(s.Instance.InstanceId)
	if s.TerminateErr != nil {
		return errNotTerminated(s, fmt.Sprintf("delete volumes %s", strings.Join(vols, ", ")))
	}
	if _, err := waitInstance(ctx, s, id, types.InstanceStateNameTerminated); err != nil {
		return fmt.Errorf("before deleting the volumes of instance %s: %w", id, err)
	}
	var errs []string
	for _, v := range vols {
		s.UI.Message("Deleting volume: " + v)
		_, err := api.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(v)})
		if err != nil && apiCode(err) != "InvalidVolume.NotFound" {
			errs = append(errs, fmt.Sprintf("delete volume %s: %v", v, err))
			continue
		}
		s.deleted(ledger.KindVolume, s.Region, v)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// stepStop stops the instance so that the image is consistent; with
// disable_stop_instance a provisioner is expected to stop it.
type stepStop struct{}

func (stepStop) Name() string { return "stop source instance" }

func (stepStop) Run(ctx context.Context, s *State) error {
	c := s.Config
	if c.SkipCreateAMI {
		return nil
	}
	id := aws.ToString(s.Instance.InstanceId)
	var api stopInstancesAPI = s.ec2("")
	if s.Instance.InstanceLifecycle == types.InstanceLifecycleTypeSpot {
		// A one-time spot instance cannot be stopped; CreateImage reboots
		// it instead, which gives a consistent image too.
		s.UI.Say("Skipping the stop of the spot instance: the AMI is made with a reboot")
		return nil
	}
	if c.DisableStopInstance {
		s.UI.Say("Automatic instance stop disabled. Please stop instance manually.")
	} else {
		s.UI.Say("Stopping the source instance...")
		if _, err := api.StopInstances(ctx, stopInstancesInput(id)); err != nil {
			return fmt.Errorf("stop source instance %s: %w", id, err)
		}
		s.UI.Say("Stopping instance") // Packer's second line
	}
	s.UI.Say("Waiting for the instance to stop...")
	if _, err := waitInstance(ctx, s, id, types.InstanceStateNameStopped); err != nil {
		return err
	}
	for _, in := range instanceAttributeInputs(c, id) {
		what := "SR-IOV"
		if in.EnaSupport != nil {
			what = "ENA"
			s.UI.Say(fmt.Sprintf("Setting ENA support to %t on the source instance...", *c.ENASupport))
		} else {
			s.UI.Say("Enabling enhanced networking (SR-IOV) on the source instance...")
		}
		if _, err := api.ModifyInstanceAttribute(ctx, in); err != nil {
			return fmt.Errorf("set %s support on instance %s: %w", what, id, err)
		}
	}
	return nil
}

func (stepStop) Cleanup(context.Context, *State) error { return nil }

// launchHint tells the user what to do about a launch EC2 refused for
// want of capacity or quota, which retrying at once does not cure.
func launchHint(err error) string {
	switch apiCode(err) {
	case "InsufficientInstanceCapacity", "InsufficientCapacity", "InsufficientHostCapacity":
		return "; EC2 has no capacity for this instance type there right now: run the build again later, or choose another instance_type, availability_zone or subnet_id"
	case "InstanceLimitExceeded", "VcpuLimitExceeded", "MaxSpotInstanceCountExceeded":
		return "; the account's instance quota is used up: terminate instances you no longer need, or ask AWS for a higher quota"
	}
	return ""
}

// launchRefused reports whether EC2 refused a launch for want of capacity
// or quota: nothing was launched.
func launchRefused(err error) bool { return launchHint(err) != "" }
