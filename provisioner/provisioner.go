// Package provisioner defines what a provisioner is and runs the fields
// Packer handles for every provisioner: pause_before, max_retries, timeout.
// The provisioners live in sub-packages: shell, file, shelllocal, breakpoint.
package provisioner

import (
	"context"

	"github.com/amibake/amibake/internal/communicator"
	"github.com/amibake/amibake/internal/ui"
)

// Build is what a provisioner may know about the build it runs in: Packer's
// "generated data" (`build.*` in HCL2, `{{ build `Host` }}` in JSON).
type Build struct {
	Name string // the build's full name (only/except match it)
	// PackerName is PACKER_BUILD_NAME: the source's name in HCL2, the
	// builder's name in JSON; Name when empty.
	PackerName string
	Type       string // "amazon-ebs"
	RunUUID    string // PACKER_RUN_UUID
	InstanceID string
	Host       string
	Port       int
	User       string
	// SSHPrivateKey is secret: never print it.
	SSHPrivateKey string
	SourceAMI     string
	SourceAMIName string
	Region        string
	// TempPrefix names the local temporary files of the run (inline
	// scripts), so that `amibake cleanup` removes what a killed run left;
	// empty uses Packer's plain names.
	TempPrefix string
}

// TempPattern is the os.CreateTemp pattern of a local temporary file
// named base for build b.
func TempPattern(b *Build, base string) string {
	if b == nil {
		return base
	}
	return b.TempPrefix + base
}

// BuildName is PACKER_BUILD_NAME, as Packer sets it.
func (b *Build) BuildName() string {
	if b.PackerName != "" {
		return b.PackerName
	}
	return b.Name
}

// Provisioner changes a machine being built.
type Provisioner interface {
	Provision(ctx context.Context, u ui.UI, comm communicator.Communicator, b *Build) error
}

// InputFile is a local file or directory a provisioner reads when it runs.
type InputFile struct {
	Path string
	// Role says what the file is to the provisioner ("playbook", "role
	// path"); plan shows it.
	Role string
}

// InputLister is implemented by provisioners that read local files, so
// that plan shows them and the input digest covers their content.
type InputLister interface {
	InputFiles() []InputFile
}
