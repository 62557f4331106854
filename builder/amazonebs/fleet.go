package amazonebs

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"github.com/google/uuid"

	"github.com/amibake/amibake/internal/ledger"
)

// spotLaunch is what one launchSpot attempt did.
type spotLaunch struct {
	InstanceID string
	// TemplateID is the launch template the attempt made (deleted
	// since); Unanswered, that its CreateFleet call ended without saying
	// whether it launched: the instance, if any, carries the template's
	// id in EC2's aws:ec2launchtemplate:id tag.
	TemplateID string
	Unanswered bool
}

// launchSpot starts one spot instance through an instant EC2 Fleet, as
// Packer does: EC2 picks among spot_instance_types by
// spot_allocation_strategy instead of amibake trying them one by one. The
// launch template the fleet needs is deleted as soon as the fleet answers.
func launchSpot(ctx context.Context, s *State, api spotFleetAPI, in *ec2.RunInstancesInput, token string) (spotLaunch, error) {
	var res spotLaunch
	fleetTags, err := s.renderTags("fleet_tags", s.Config.Parsed.FleetTags)
	if err != nil {
		return res, err
	}
	own := s.ownTags()
	// Journaled by name before it exists, so that a run killed before
	// the answer leaves `cleanup` a name to look for.
	ltName := "amibake_" + uuid.NewString()
	entry, err := s.intend(ledger.KindLaunchTemplate, s.Region, ltName)
	if err != nil {
		return res, fmt.Errorf("record the launch template of the spot fleet in the run journal: %w", err)
	}
	lt, err := api.CreateLaunchTemplate(ctx, createLaunchTemplateInput(ltName, token, launchTemplateData(in), own))
	if err != nil {
		return res, fmt.Errorf("create the launch template of the spot fleet: %w", err)
	}
	ltID := aws.ToString(lt.LaunchTemplate.LaunchTemplateId)
	res.TemplateID = ltID
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
		return res, fmt.Errorf("record launch template %s in the run journal: %w", ltID, err)
	}
	// A public IP puts the subnet in the network interface instead; a
	// subnet decides the zone.
	az := ""
	if s.SubnetID == "" {
		az = s.AZ
	}
	// The key pair, group or template just made may not be visible to
	// the fleet yet: it then answers with NotFound errors and launches
	// nothing, and the next try is a new request with a new ClientToken.
	attempt := 0
	err = s.retryNotFound(ctx, "the key pair, security group and launch template to be visible", func(ctx context.Context) error {
		tok := token
		if attempt > 0 {
			tok = fmt.Sprintf("%s-%d", token, attempt)
		}
		attempt++
		id, unanswered, err := createFleet(ctx, api, createFleetInput(s.Config, ltID, tok, aws.ToString(in.SubnetId), az, own, fleetTags))
		res.InstanceID = id
		res.Unanswered = res.Unanswered || unanswered
		return err
	})
	return res, err
}

// createFleet sends one CreateFleet and returns its instance; unanswered
// says the call ended without saying whether it launched one. When the
// fleet reports only NotFound errors, the error is an API error of that
// code (retryNotFound retries it).
func createFleet(ctx context.Context, api spotFleetAPI, in *ec2.CreateFleetInput) (id string, unanswered bool, err error) {
	out, err := api.CreateFleet(ctx, in)
	if err != nil {
		return "", maybeCreated(ctx, err), fmt.Errorf("launch a spot instance through an EC2 fleet: %w", err)
	}
	for _, i := range out.Instances {
		if len(i.InstanceIds) > 0 {
			return i.InstanceIds[0], false, nil
		}
	}
	var why []string
	notFound := len(out.Errors) > 0
	for _, e := range out.Errors {
		code := aws.ToString(e.ErrorCode)
		why = append(why, fmt.Sprintf("%s: %s (%s)", code, aws.ToString(e.ErrorMessage), instanceTypeOf(e)))
		notFound = notFound && isNotFoundCode(code)
	}
	msg := "the spot fleet launched no instance: " + strings.Join(why, "; ")
	if notFound {
		return "", false, &fleetError{code: aws.ToString(out.Errors[0].ErrorCode), msg: msg}
	}
	return "", false, errors.New(msg)
}

// fleetError is an error CreateFleet reported in its answer, as an API
// error with its code (the message is amibake's).
type fleetError struct{ code, msg string }

func (e *fleetError) Error() string                 { return e.msg }
func (e *fleetError) ErrorCode() string             { return e.code }
func (e *fleetError) ErrorMessage() string          { return e.msg }
func (e *fleetError) ErrorFault() smithy.ErrorFault { return smithy.FaultClient }

func instanceTypeOf(e types.CreateFleetError) string {
	if e.LaunchTemplateAndOverrides != nil && e.LaunchTemplateAndOverrides.Overrides != nil {
		return string(e.LaunchTemplateAndOverrides.Overrides.InstanceType)
	}
	return "?"
}
