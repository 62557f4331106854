package amazonebs

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/google/uuid"

	"github.com/amibake/amibake/internal/ledger"
)

// launchSpot starts one spot instance through an instant EC2 Fleet, as
// Packer does: EC2 picks among spot_instance_types by
// spot_allocation_strategy instead of amibake trying them one by one. The
// launch template the fleet needs is deleted as soon as the fleet answers.
func launchSpot(ctx context.Context, s *State, api spotFleetAPI, in *ec2.RunInstancesInput, token string) (string, error) {
	fleetTags, err := s.renderTags("fleet_tags", s.Config.Parsed.FleetTags)
	if err != nil {
		return "", err
	}
	own := s.ownTags()
	// Journaled by name before it exists, so that a run killed before
	// the answer leaves `cleanup` a name to look for.
	ltName := "amibake_" + uuid.NewString()
	entry, err := s.intend(ledger.KindLaunchTemplate, s.Region, ltName)
	if err != nil {
		return "", fmt.Errorf("record the launch template of the spot fleet in the run journal: %w", err)
	}
	lt, err := api.CreateLaunchTemplate(ctx, createLaunchTemplateInput(ltName, token, launchTemplateData(in), own))
	if err != nil {
		return "", fmt.Errorf("create the launch template of the spot fleet: %w", err)
	}
	ltID := aws.ToString(lt.LaunchTemplate.LaunchTemplateId)
	s.born(ltID)
	defer func() {
		// The fleet's instance no longer needs its template.
		if derr := s.deleteRetry(context.WithoutCancel(ctx), ltID, "delete launch template "+ltID, func(ctx context.Context) error {
			_, err := api.DeleteLaunchTemplate(ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateId: aws.String(ltID)})
			return err
		}); derr != nil {
			s.UI.Error(fmt.Sprintf("Error deleting launch template %s: %v", ltID, derr))
			return
		}
		s.deleted(ledger.KindLaunchTemplate, s.Region, ltID)
	}()
	if err := s.created(entry, ltID); err != nil {
		return "", fmt.Errorf("record launch template %s in the run journal: %w", ltID, err)
	}
	// A public IP puts the subnet in the network interface instead; a
	// subnet decides the zone.
	az := ""
	if s.SubnetID == "" {
		az = s.AZ
	}
	out, err := api.CreateFleet(ctx, createFleetInput(s.Config, ltID, token, aws.ToString(in.SubnetId), az, own, fleetTags))
	if err != nil {
		return "", fmt.Errorf("launch a spot instance through an EC2 fleet: %w", err)
	}
	for _, i := range out.Instances {
		if len(i.InstanceIds) > 0 {
			return i.InstanceIds[0], nil
		}
	}
	var why []string
	for _, e := range out.Errors {
		why = append(why, fmt.Sprintf("%s: %s (%s)", aws.ToString(e.ErrorCode), aws.ToString(e.ErrorMessage), instanceTypeOf(e)))
	}
	return "", fmt.Errorf("the spot fleet launched no instance: %s", strings.Join(why, "; "))
}

func instanceTypeOf(e types.CreateFleetError) string {
	if e.LaunchTemplateAndOverrides != nil && e.LaunchTemplateAndOverrides.Overrides != nil {
		return string(e.LaunchTemplateAndOverrides.Overrides.InstanceType)
	}
	return "?"
}
