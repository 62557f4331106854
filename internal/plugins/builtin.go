package plugins

import (
	"github.com/amibake/amibake/postprocessor/amazonamimanagement"
	"github.com/amibake/amibake/postprocessor/manifest"
	ppshelllocal "github.com/amibake/amibake/postprocessor/shelllocal"
	"github.com/amibake/amibake/provisioner/ansible"
	"github.com/amibake/amibake/provisioner/ansiblelocal"
	"github.com/amibake/amibake/provisioner/breakpoint"
	"github.com/amibake/amibake/provisioner/file"
	"github.com/amibake/amibake/provisioner/shell"
	"github.com/amibake/amibake/provisioner/shelllocal"
)

func init() {
	registerProvisioner("shell", shell.New)
	registerProvisioner("file", file.New)
	registerProvisioner("shell-local", shelllocal.New)
	registerProvisioner("breakpoint", breakpoint.New)
	registerProvisioner("ansible", ansible.New)
	registerProvisioner("ansible-local", ansiblelocal.New)
	registerPostProcessor("manifest", manifest.New)
	registerPostProcessor("amazon-ami-management", amazonamimanagement.New)
	registerPostProcessor("shell-local", ppshelllocal.New)
}
