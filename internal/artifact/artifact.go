// Package artifact describes what a build produced: AMIs by region. The
// builder creates one; post-processors read it and may return another.
package artifact

import (
	"sort"
	"strings"
)

// Artifact is a build's result.
type Artifact struct {
	// BuildName is the build's full name ("amazon-ebs", "app.amazon-ebs.ubuntu").
	BuildName string
	// BuilderType is Packer's builder id for manifests: "amazon-ebs".
	BuilderType string
	// AMIs maps region to AMI id.
	AMIs map[string]string
	// Snapshots maps region to the AMI's snapshot ids.
	Snapshots map[string][]string
	// Files are local files produced (none for AMIs; post-processors may add).
	Files []string
	// Reused is true when no instance was launched because an AMI with the
	// same input digest existed.
	Reused bool
	// Data is free-form generated data (source AMI, input digest, ...).
	Data map[string]string
}

// ID is Packer's artifact id: "region:ami-...,region:ami-..." sorted by region.
func (a *Artifact) ID() string {
	regions := make([]string, 0, len(a.AMIs))
	for r := range a.AMIs {
		regions = append(regions, r)
	}
	sort.Strings(regions)
	parts := make([]string, 0, len(regions))
	for _, r := range regions {
		parts = append(parts, r+":"+a.AMIs[r])
	}
	return strings.Join(parts, ",")
}

// String is Packer's human summary.
func (a *Artifact) String() string {
	if len(a.AMIs) == 0 {
		return "No AMIs were created."
	}
	var b strings.Builder
	if a.Reused {
		b.WriteString("AMIs were reused (their input digest matches; nothing was baked):\n")
	} else {
		b.WriteString("AMIs were created:\n")
	}
	for _, p := range strings.Split(a.ID(), ",") {
		r, id, _ := strings.Cut(p, ":")
		b.WriteString(r + ": " + id + "\n")
	}
	return strings.TrimRight(b.String(), "\n")
}
