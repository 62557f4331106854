package amazonebs

import (
	"fmt"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amibake/amibake/internal/ledger"
	"github.com/amibake/amibake/internal/template"
)

// ownTags are the tags every resource amibake creates carries from its
// create call, so that `amibake cleanup` can find what a killed run left.
// The lease is there from birth: the run's keeper pushes it forward
// while the run lives, but a resource made after its last refresh (or
// by a run killed before the first) is covered all the same.
func (s *State) ownTags() map[string]string {
	now := s.now().UTC()
	// The command refuses a bad value before any build starts.
	lease, err := ledger.LeaseFromEnv(s.getenv)
	if err != nil {
		lease = ledger.DefaultLease
	}
	return map[string]string{
		ledger.TagRunID:      s.RunID,
		ledger.TagBuild:      s.BuildName,
		ledger.TagCreatedAt:  now.Format("2006-01-02T15:04:05Z"),
		ledger.TagLeaseUntil: ledger.CreatedAt(now.Add(lease)),
	}
}

// render renders build-time fields ({{ .SourceAMI }}) in a template value.
func (s *State) render(field, v string) (string, error) {
	out, err := template.RenderBuildTime(v, s.BuildTime)
	if err != nil {
		return "", fmt.Errorf("render %s %q: %w", field, v, err)
	}
	return out, nil
}

// renderTags renders every key and value of a tag map.
func (s *State) renderTags(field string, m map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(m))
	for k, v := range m {
		rk, err := s.render(field, k)
		if err != nil {
			return nil, err
		}
		rv, err := s.render(field, v)
		if err != nil {
			return nil, err
		}
		out[rk] = rv
	}
	return out, nil
}

// tagSpec returns a TagSpecification of amibake's own tags plus user tags
// (which cannot override amibake's).
func (s *State) tagSpec(rt types.ResourceType, user map[string]string) types.TagSpecification {
	return tagSpecOf(rt, s.ownTags(), user)
}

// tagSpecOf is the pure part of (*State).tagSpec: own wins over user.
func tagSpecOf(rt types.ResourceType, own, user map[string]string) types.TagSpecification {
	merged := map[string]string{}
	for k, v := range user {
		merged[k] = v
	}
	for k, v := range own {
		merged[k] = v
	}
	return types.TagSpecification{ResourceType: rt, Tags: ec2Tags(merged)}
}

func ec2Tags(m map[string]string) []types.Tag {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	tags := make([]types.Tag, 0, len(keys))
	for _, k := range keys {
		tags = append(tags, types.Tag{Key: aws.String(k), Value: aws.String(m[k])})
	}
	return tags
}

// EC2Filters turns name=value filters into EC2 filters, sorted by name.
func EC2Filters(m map[string]string) []types.Filter { return ec2Filters(m) }

func ec2Filters(m map[string]string) []types.Filter {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]types.Filter, 0, len(keys))
	for _, k := range keys {
		out = append(out, types.Filter{Name: aws.String(k), Values: []string{m[k]}})
	}
	return out
}

func tagMap(tags []types.Tag) map[string]string {
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}
